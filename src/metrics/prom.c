/* prom.c — placeholder */
#include "metrics.h"
