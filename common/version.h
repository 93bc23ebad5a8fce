/* version: the build's version string, "0.1.0 (abc1234)"; set by the Makefile. */
#ifndef EV_VERSION_H
#define EV_VERSION_H

extern const char version_string[];

#endif
