/*
 * message.c - text that never allocates: a small printf into a caller's
 * buffer (struct text, common.h), warnings, and the message before an abort.
 *
 * Invariants
 *  - No allocation, no stdio, no lock: callable from a signal handler, from
 *    inside the allocator and before it is initialised.
 *  - Output goes through out_write (output.c), which picks the descriptor:
 *    a text leaves in one write() per buffer-full, cut at a line end when it
 *    is longer than its buffer, so that lines from processes writing to the
 *    same stderr do not interleave.
 *  - Warnings go to OUT_WARN; the message before an abort to OUT_FATAL (see
 *    output.h), as one write, then abort().
 */
#include "common.h"
#include "output.h"
#include <stdarg.h>
#include <string.h>
#include <stdlib.h>

/* Hand the complete lines of a full buffer to the destination, keep the
 * rest; a single line longer than the buffer goes out as it is. */
static void text_spill(struct text *t)
{
	size_t n = t->len;
	while (n && t->buf[n - 1] != '\n')
		n--;
	if (!n)
		n = t->len;
	out_write(t->dest, t->buf, n);
	memmove(t->buf, t->buf + n, t->len - n);
	t->len -= n;
}

void text_flush(struct text *t)
{
	if (t->len)
		out_write(t->dest, t->buf, t->len);
	t->len = 0;
}

static void text_putc(struct text *t, char c)
{
	if (t->len == t->cap)
		text_spill(t);
	t->buf[t->len++] = c;
}

/* s, at most max chars of it, padded to width (on the left unless left) */
static void text_puts(struct text *t, const char *s, size_t max, int width, bool left)
{
	size_t len = strnlen(s, max);
	int pad = width - (int)len;
	while (!left && pad-- > 0)
		text_putc(t, ' ');
	for (size_t i = 0; i < len; i++)
		text_putc(t, s[i]);
	while (left && pad-- > 0)
		text_putc(t, ' ');
}

static char *fmt_unsigned(char *end, unsigned long long v, unsigned base)
{
	*--end = 0;
	do {
		*--end = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	return end;
}

static void text_vprintf(struct text *t, const char *fmt, va_list ap)
{
	char num[32];
	for (const char *f = fmt; *f; f++) {
		if (*f != '%') {
			text_putc(t, *f);
			continue;
		}
		f++;
		bool left = *f == '-';
		if (left)
			f++;
		int width = 0;
		while (*f >= '0' && *f <= '9')
			width = width * 10 + (*f++ - '0');
		size_t max = (size_t)-1;
		if (f[0] == '.' && f[1] == '*') {
			int prec = va_arg(ap, int);
			max = prec < 0 ? (size_t)-1 : (size_t)prec;
			f += 2;
		}
		int lng = 0;
		while (*f == 'l' || *f == 'z') {
			lng++;
			f++;
		}
		switch (*f) {
		case 's': text_puts(t, va_arg(ap, const char *), max, width, left); break;
		case 'c': text_putc(t, (char)va_arg(ap, int)); break;
		case 'd': {
			long long v = lng ? va_arg(ap, long) : va_arg(ap, int);
			char *s = fmt_unsigned(num + sizeof num,
					       v < 0 ? -(unsigned long long)v : (unsigned long long)v, 10);
			if (v < 0)
				*--s = '-';
			text_puts(t, s, (size_t)-1, width, left);
			break;
		}
		case 'u': case 'x': {
			unsigned long long v = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
			text_puts(t, fmt_unsigned(num + sizeof num, v, *f == 'x' ? 16 : 10),
				  (size_t)-1, width, left);
			break;
		}
		case 'p': {
			char *s = fmt_unsigned(num + sizeof num, (uintptr_t)va_arg(ap, void *), 16);
			*--s = 'x';
			*--s = '0';
			text_puts(t, s, (size_t)-1, width, left);
			break;
		}
		case '%': text_putc(t, '%'); break;
		default: return;
		}
	}
}

void text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	text_vprintf(t, fmt, ap);
	va_end(ap);
}

void bsl_printf(int dest, const char *fmt, ...)
{
	char buf[1024];
	struct text t = TEXT_INIT(buf, dest);
	va_list ap;
	va_start(ap, fmt);
	text_vprintf(&t, fmt, ap);
	va_end(ap);
	text_flush(&t);
}

void bsl_warnf(const char *fmt, ...)
{
	char buf[1024];
	struct text t = TEXT_INIT(buf, OUT_WARN);
	text_printf(&t, "buddyslab: warning: ");
	va_list ap;
	va_start(ap, fmt);
	text_vprintf(&t, fmt, ap);
	va_end(ap);
	text_putc(&t, '\n');
	text_flush(&t);
}

void bsl_warn(const char *msg, const char *detail)
{
	bsl_warnf("%s%s%s", msg, detail ? " " : "", detail ? detail : "");
}

void bsl_fatalf(const char *what, const char *fmt, ...)
{
	char buf[1024];
	struct text t = TEXT_INIT(buf, OUT_FATAL);
	text_printf(&t, "buddyslab: ");
	va_list ap;
	va_start(ap, fmt);
	text_vprintf(&t, fmt, ap);
	va_end(ap);
	text_printf(&t, "\nbuddyslab: %s\n", what);
	text_flush(&t);
	abort();
}

void bsl_fatal(const char *what, const void *ptr)
{
	char buf[512];
	struct text t = TEXT_INIT(buf, OUT_FATAL);
	if (ptr)
		text_printf(&t, "buddyslab: %s %p\n", what, ptr);
	else
		text_printf(&t, "buddyslab: %s\n", what);
	text_flush(&t);
	abort();
}
