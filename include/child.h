/* child.h — running a user's shell command as a child on the sd-event loop:
 * a config file's render command (JSON on stdin, the file on stdout) and its
 * check command (the staged file's path as $1).
 *
 * The command runs as `/bin/sh -c COMMAND sh [ARG]` in its own process
 * group, with stdin fed from a buffer (or /dev/null), stdout captured (up
 * to max_output bytes; more is an error) and the tail of stderr kept for the
 * error message. At the timeout the group gets SIGKILL. The callback runs
 * exactly once, unless child_run_free() comes first (which kills and reaps
 * the child); the callback may free the run.
 *
 * The run ends when the shell has exited and stdout and stderr reached EOF:
 * a background process that keeps them open keeps the run going until the
 * timeout. Input is copied; the caller's buffer is free after the call.
 *
 * Signals: sd_event_add_child() requires SIGCHLD blocked, so
 * child_run_start() blocks it in the calling thread (the loop's) if it is
 * not. The command starts with an empty signal mask and default signal
 * handlers, whatever the daemon blocks or ignores. Writing to a command
 * that stopped reading raises no SIGPIPE in the caller. The timeout timer
 * asks sd-event for 1 ms accuracy (its default is 250 ms). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "macro.h"

typedef struct child_run child_run;

typedef struct child_result {
	int error;                  /* 0: exited 0; -EIO: exited non-zero or
	                               killed by a signal; -ETIMEDOUT; -EFBIG:
	                               too much output; other -errno: could not
	                               run */
	int exit_status;            /* exit code, or 128 + signal; -1 if none */
	const char *out;            /* stdout, NUL-terminated; valid in the cb */
	size_t out_len;
	char message[512];          /* for humans: how it ended and the tail of
	                               stderr */
} child_result;

typedef void (*child_done_cb)(child_run *r, const child_result *res, void *userdata);

typedef struct child_options {
	const char *command;        /* given to /bin/sh -c */
	const char *arg;            /* $1, or NULL */
	const void *input;          /* stdin bytes, or NULL for /dev/null */
	size_t input_len;
	size_t max_output;          /* 0: 16 MiB */
	uint64_t timeout_usec;      /* 0: 30 s */
	char *const *env;           /* "K=V" set for the command on top of the
	                               daemon's environment (NULL-terminated),
	                               or NULL */
} child_options;

int child_run_start(child_run **out, sd_event *event, const child_options *o, child_done_cb cb, void *userdata);
child_run *child_run_free(child_run *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(child_run *, child_run_free);
