/* http.c — placeholder */
#include "metrics.h"
