/* loadhist.h — the leader's side of the load history (internal to
 * src/scaler/): see loadhist.c. Pure of the cycle: execute.c passes the
 * records, the decision and a put. */
#pragma once

#include <time.h>

#include "scale-observe.h"

/* Takes text (malloc'd) whatever it returns. 0 or -errno. */
typedef int (*loadhist_put_fn)(void *userdata, const char *pool, char *text);

/* For each pool of rec's policy with forecast enabled: its demand as this
 * decision saw it (jobs running + queue, out's metrics) added to its
 * history (rec->load_history; absent or bad: started afresh), and put()
 * called with the new text when it is to be written (a new minute). 0,
 * -ENOMEM, or put's error. */
int loadhist_update(const scale_records *rec, const scale_output *out, time_t now, loadhist_put_fn put,
		    void *userdata);
