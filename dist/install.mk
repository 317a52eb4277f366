# dist/install.mk - make install / make uninstall, included by the top Makefile
# (uses B, VERSION, VERSION_MAJOR, SONAME).
#
#   make install [PREFIX=/usr/local] [DESTDIR=/staging] [LDCONFIG=ldconfig]
#   make uninstall (same variables): removes exactly the files install made
#
# Layout (every path under $(DESTDIR)):
#   $(libdir)/libbuddyslab.so.X.Y.Z      the shared library, soname libbuddyslab.so.X
#   $(libdir)/libbuddyslab.so.X          -> libbuddyslab.so.X.Y.Z
#   $(libdir)/libbuddyslab.so            -> libbuddyslab.so.X (for -lbuddyslab)
#   $(libdir)/libbuddyslab.a             the archive (C++ operators with strong libstdc++ references)
#   $(includedir)/buddyslab.h
#   $(pkgconfigdir)/buddyslab.pc         from dist/buddyslab.pc.in
#   $(bindir)/buddyslab                  the launcher (scripts/buddyslab, library path filled in)
#   $(man7dir)/buddyslab.7               from dist/buddyslab.7
# Paths written into buddyslab.pc and the launcher leave DESTDIR out: they are
# where the files will be once the staging tree is copied to /.
# When DESTDIR is empty and the user is root, install and uninstall run
# $(LDCONFIG) so that programs linked with -lbuddyslab find the soname.
PREFIX       ?= /usr/local
bindir       ?= $(PREFIX)/bin
libdir       ?= $(PREFIX)/lib
includedir   ?= $(PREFIX)/include
pkgconfigdir ?= $(libdir)/pkgconfig
mandir       ?= $(PREFIX)/share/man
man7dir      ?= $(mandir)/man7
INSTALL      ?= install
LDCONFIG     ?= ldconfig
REALNAME     := libbuddyslab.so.$(VERSION)

INSTALLED_FILES := $(libdir)/$(REALNAME) $(libdir)/$(SONAME) $(libdir)/libbuddyslab.so \
	$(libdir)/libbuddyslab.a $(includedir)/buddyslab.h $(pkgconfigdir)/buddyslab.pc \
	$(bindir)/buddyslab $(man7dir)/buddyslab.7

# @NAME@ placeholders in the .pc file, the launcher and the man page
SUBST := sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(libdir)|g' \
	-e 's|@INCLUDEDIR@|$(includedir)|g' -e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@BINDIR@|$(bindir)|g' -e 's|@PKGCONFIGDIR@|$(pkgconfigdir)|g' \
	-e 's|@LIBRARY@|$(libdir)/$(SONAME)|g'

.PHONY: install uninstall
install: lib
	$(INSTALL) -d "$(DESTDIR)$(libdir)" "$(DESTDIR)$(includedir)" "$(DESTDIR)$(pkgconfigdir)" \
		"$(DESTDIR)$(bindir)" "$(DESTDIR)$(man7dir)"
	$(INSTALL) -m 755 $(B)/libbuddyslab.so "$(DESTDIR)$(libdir)/$(REALNAME)"
	ln -sfn $(REALNAME) "$(DESTDIR)$(libdir)/$(SONAME)"
	ln -sfn $(SONAME) "$(DESTDIR)$(libdir)/libbuddyslab.so"
	$(INSTALL) -m 644 $(B)/libbuddyslab.a "$(DESTDIR)$(libdir)/libbuddyslab.a"
	$(INSTALL) -m 644 include/buddyslab.h "$(DESTDIR)$(includedir)/buddyslab.h"
	$(SUBST) dist/buddyslab.pc.in > "$(DESTDIR)$(pkgconfigdir)/buddyslab.pc"
	chmod 644 "$(DESTDIR)$(pkgconfigdir)/buddyslab.pc"
	$(SUBST) scripts/buddyslab > "$(DESTDIR)$(bindir)/buddyslab"
	chmod 755 "$(DESTDIR)$(bindir)/buddyslab"
	$(SUBST) dist/buddyslab.7 > "$(DESTDIR)$(man7dir)/buddyslab.7"
	chmod 644 "$(DESTDIR)$(man7dir)/buddyslab.7"
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then echo "$(LDCONFIG)"; $(LDCONFIG) || true; fi

uninstall:
	rm -f $(foreach f,$(INSTALLED_FILES),"$(DESTDIR)$(f)")
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then echo "$(LDCONFIG)"; $(LDCONFIG) || true; fi
