/*
 * message.c - text output that never allocates: warnings, fatal errors and a
 * small printf used by the statistics views. Everything goes through write(2).
 */
#include "common.h"
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>


void bsl_write_str(int fd, const char *s)
{
	size_t len = strlen(s);
	while (len) {
		ssize_t n = write(fd, s, len);
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
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

struct outbuf { int fd; size_t len; char buf[512]; };

static void out_flush(struct outbuf *o)
{
	o->buf[o->len] = 0;
	bsl_write_str(o->fd, o->buf);
	o->len = 0;
}

static void out_str(struct outbuf *o, const char *s, int width, bool left)
{
	int pad = width - (int)strlen(s);
	while (!left && pad-- > 0) { if (o->len == sizeof o->buf - 1) out_flush(o); o->buf[o->len++] = ' '; }
	for (; *s; s++) {
		if (o->len == sizeof o->buf - 1)
			out_flush(o);
		o->buf[o->len++] = *s;
	}
	while (left && pad-- > 0) { if (o->len == sizeof o->buf - 1) out_flush(o); o->buf[o->len++] = ' '; }
}

static void out_vprintf(struct outbuf *o, const char *fmt, va_list ap)
{
	char num[32];
	for (const char *f = fmt; *f; f++) {
		if (*f != '%') {
			char c[2] = { *f, 0 };
			out_str(o, c, 0, false);
			continue;
		}
		f++;
		bool left = *f == '-';
		if (left)
			f++;
		int width = 0;
		while (*f >= '0' && *f <= '9')
			width = width * 10 + (*f++ - '0');
		int lng = 0;
		while (*f == 'l' || *f == 'z') {
			lng++;
			f++;
		}
		switch (*f) {
		case 's': out_str(o, va_arg(ap, const char *), width, left); break;
		case 'd': {
			long long v = lng ? va_arg(ap, long) : va_arg(ap, int);
			char *s = fmt_unsigned(num + sizeof num, v < 0 ? -(unsigned long long)v : (unsigned long long)v, 10);
			if (v < 0) *--s = '-';
			out_str(o, s, width, left);
			break;
		}
		case 'u': case 'x': {
			unsigned long long v = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
			out_str(o, fmt_unsigned(num + sizeof num, v, *f == 'x' ? 16 : 10), width, left);
			break;
		}
		case 'p': {
			char *s = fmt_unsigned(num + sizeof num, (uintptr_t)va_arg(ap, void *), 16);
			*--s = 'x';
			*--s = '0';
			out_str(o, s, width, left);
			break;
		}
		case '%': out_str(o, "%", 0, false); break;
		default: return;
		}
	}
}

void bsl_printf(int fd, const char *fmt, ...)
{
	struct outbuf o = { .fd = fd, .len = 0 };
	va_list ap;
	va_start(ap, fmt);
	out_vprintf(&o, fmt, ap);
	va_end(ap);
	out_flush(&o);
}

void bsl_warn(const char *msg, const char *detail)
{
	bsl_printf(2, "buddyslab: warning: %s %s\n", msg, detail ? detail : "");
}

void bsl_fatal(const char *what, const void *ptr)
{
	if (ptr)
		bsl_printf(2, "buddyslab: %s %p\n", what, ptr);
	else
		bsl_printf(2, "buddyslab: %s\n", what);
	abort();
}
