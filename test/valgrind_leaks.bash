# valgrind_leaks.bash - sourced by valgrind.sh (buddyslab preloaded) and
# valgrind_static.sh (linked in): memcheck's leak check must see a leaked
# block as "definitely lost" and a block a global points at as "still
# reachable", with buddyslab as the allocator exactly as with any other, so
# no allocator metadata may point at a block (DESIGN.md 12). Runs
# test/valgrind_leaks.c once per case (its header says what each case does)
# and checks memcheck's numbers against the table below, which is what
# memcheck's own malloc gives for the same program (valgrind.sh checks that
# too, label memcheck_malloc).
#
#   leaks_build OUT [cc arguments...]   compile valgrind_leaks.c into OUT
#   leaks_check LABEL HOW EXE [valgrind options...]
#       one line PASS/FAIL valgrind_LABEL_leaks_CASE per case.
#       HOW is "exact": memcheck's LEAK SUMMARY must be the case's numbers
#       (nothing else lost or reachable; no indirect or possible leak), and
#       so must the loss records allocated from valgrind_leaks.c; or
#       "records": only those records are checked (a fully static program,
#       where glibc's own start-up blocks are in RELRO, which the leak check
#       does not scan, and no __libc_freeres runs: valgrind_static.sh).
#   LEAKS_ENV      an array: the run's environment (LEAKS_ENV=(LD_PRELOAD=...)), may be empty
#   LEAKS_LAYOUT=1 the program's "layout" lines must say yes (buddyslab: the
#                  first/middle/last objects are what their names say)
# Every run is pinned to one CPU (the first this shell may use): the slab a
# block comes from depends on the CPU it runs on, and the layout cases need
# three neighbours from one slab.
# On a failure the run is repeated with LEAKS_WHO=1, which makes memcheck
# print who points at each block that should have been lost.

leaks_src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/valgrind_leaks.c

# case  definitely-lost bytes blocks  still-reachable bytes blocks
leaks_table='
slab_first    2500 1       0 0
slab_middle   2500 1       0 0
slab_last     2500 1       0 0
run_40k       40960 1      0 0
large_3x300k  900000 3     0 0
global_kept   0 0          343460 3
one_past_end  633344 4     334336 3
'
leaks_layout_cases=' slab_first slab_middle slab_last '
LEAKS_ENV=()

leaks_build() {   # out, cc arguments...
	local out=$1; shift
	cc -g -O0 -o "$out" "$leaks_src" "$@"
}

leaks_cpu() {
	local cpus
	cpus=$(taskset -pc $$ 2>/dev/null | sed 's/.*: *//')
	[ -n "$cpus" ] && echo "${cpus%%[,-]*}"
}

# Sum the loss records of memcheck output on stdin by kind, for the records
# whose allocation stack has a frame in valgrind_leaks.c ("ours") and for the
# others: lines "ours|other KIND BYTES BLOCKS"; then "total KIND BYTES BLOCKS"
# from the LEAK SUMMARY (all zero when every block was freed).
leaks_parse() { awk '
	function flush() { if (rec) { who = mine ? "ours" : "other"; b[who, kind] += rb; n[who, kind] += rn } rec = 0 }
	{ sub(/^==[0-9]+== ?/, ""); line = $0; gsub(/,/, "", line) }
	line ~ /^[0-9]+ (\([^)]*\) )?bytes in [0-9]+ blocks are .* in loss record/ {
		flush()
		rec = 1; mine = 0; rb = line; sub(/ .*/, "", rb)
		rn = line; sub(/.* bytes in /, "", rn); sub(/ .*/, "", rn)
		kind = line; sub(/.* blocks are /, "", kind); sub(/ in loss record.*/, "", kind)
		gsub(/ /, "_", kind); next
	}
	rec && /valgrind_leaks\.c:/ { mine = 1 }
	rec && /^ *$/ { flush() }
	line ~ /^ *(definitely lost|indirectly lost|possibly lost|still reachable): / {
		k = line; sub(/^ */, "", k); sub(/:.*/, "", k); gsub(/ /, "_", k)
		v = line; sub(/.*: /, "", v); split(v, f, " ")
		tb[k] = f[1]; tn[k] = f[4]; summary = 1
	}
	END {
		flush()
		split("definitely_lost indirectly_lost possibly_lost still_reachable", kinds, " ")
		for (i = 1; i <= 4; i++) {
			k = kinds[i]
			printf "ours %s %d %d\n", k, b["ours", k], n["ours", k]
			printf "other %s %d %d\n", k, b["other", k], n["other", k]
			printf "total %s %d %d\n", k, summary ? tb[k] : 0, summary ? tn[k] : 0
		}
	}' ; }

# The figure "BYTES BLOCKS" of WHO and KIND in parsed output $1.
leaks_fig() { awk -v w="$2" -v k="$3" '$1 == w && $2 == k { print $3, $4 }' <<<"$1"; }

leaks_check() {   # label, exact|records, exe, valgrind options...
	local label=$1 how=$2 exe=$3; shift 3
	local cpu pin=() name lost_b lost_n reach_b reach_n out parsed bad k want got
	cpu=$(leaks_cpu)
	[ -n "$cpu" ] && pin=(taskset -c "$cpu")
	while read -r name lost_b lost_n reach_b reach_n; do
		[ -n "$name" ] || continue
		out=$("${pin[@]}" env "${LEAKS_ENV[@]}" valgrind "$@" --leak-check=full --show-leak-kinds=all \
			"$exe" "$name" 2>&1)
		parsed=$(leaks_parse <<<"$out")
		bad=()
		grep -q "^done $name$" <<<"$out" || bad+=("the program did not finish the case")
		if [ "${LEAKS_LAYOUT:-0}" = 1 ] && [[ $leaks_layout_cases == *" $name "* ]] &&
		   ! grep -q "^layout $name yes$" <<<"$out"; then
			bad+=("layout: the blocks are not where the case means them to be")
		fi
		for k in definitely_lost indirectly_lost possibly_lost still_reachable; do
			case $k in
			definitely_lost) want="$lost_b $lost_n";;
			still_reachable) want="$reach_b $reach_n";;
			*) want="0 0";;
			esac
			got=$(leaks_fig "$parsed" ours $k)
			[ "$got" = "$want" ] || bad+=("${k/_/ } from valgrind_leaks.c: $got, expected $want (bytes blocks)")
			if [ "$how" = exact ]; then
				got=$(leaks_fig "$parsed" total $k)
				[ "$got" = "$want" ] || bad+=("${k/_/ } in the LEAK SUMMARY: $got, expected $want")
			fi
		done
		if [ ${#bad[@]} -eq 0 ]; then
			echo "PASS valgrind_${label}_leaks_$name"
		else
			echo "FAIL valgrind_${label}_leaks_$name"
			{
				for k in "${bad[@]}"; do echo "  [$label $name] $k"; done
				grep -E "^layout|lost:|reachable:|All heap blocks" <<<"$out" | sed 's/^/    /'
				echo "    who points at the blocks the case loses:"
				"${pin[@]}" env "${LEAKS_ENV[@]}" LEAKS_WHO=1 valgrind "$@" "$exe" "$name" 2>&1 |
					sed -n '/Searching for pointers/,/HEAP SUMMARY/p' | sed 's/^/    /' | head -40
			} >&2
		fi
	done <<<"$leaks_table"
}
