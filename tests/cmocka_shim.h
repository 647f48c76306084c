/*
 * Includes cmocka needs before <cmocka.h>, in the order it needs them.
 */
#ifndef SL_CMOCKA_SHIM_H
#define SL_CMOCKA_SHIM_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#endif
