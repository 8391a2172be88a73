/* metrics.h — Prometheus text exposition over HTTP (placeholder, being written). */
#pragma once
