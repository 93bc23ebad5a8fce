#include "version.h"

#ifndef EV_VERSION
#define EV_VERSION "unknown"
#endif

const char version_string[] = EV_VERSION;
