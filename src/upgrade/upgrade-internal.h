/* upgrade-internal.h — what runner.c (following orders, writing progress)
 * and steps.c (running one step as a unit) share. */
#pragma once

#include "backoff.h"
#include "child.h"
#include "upgrade.h"

/* One entry of the list an order runs: a configured step, or the undo of
 * one (FINISH, and after a failure). */
typedef struct upgrade_item {
	const conf_step *step;
	bool undo;                      /* run step->undo */
	int index;                      /* the step's index in its conf list */
} upgrade_item;

struct upgrade_runner {
	sd_event *event;
	etcd_client *etcd;
	units_bus *bus;
	conf *conf;
	upgrade_event_cb cb;
	void *userdata;
	upgrade_env_fn env_fn;          /* more step environment (NULL: none) */
	void *env_userdata;
	char *progress_key;
	char boot_id[40];

	etcd_call *call;                /* the progress write in flight */
	upgrade_follow *follow;         /* upgrade/nodes/<self> (follow.c) */
	child_run *image_run;
	sd_event_source *retry;
	backoff bo;                     /* write failures: 1 s doubling to 30 s */
	char *image;
	void (*then)(upgrade_runner *u);        /* after the write or image read */
	void (*then_retry)(upgrade_runner *u);  /* what the retry timer does again */
	bool started;                   /* order and progress read */

	rollout_order latest;           /* the last order seen */
	bool have_latest;
	rollout_order cur;              /* the order being run */
	bool busy;
	rollout_progress prog;          /* what we last wrote (or read) */
	bool have_prog;
	char *prev_boot_id;             /* the progress's boot at start (reboot steps) */

	upgrade_item *items;            /* the list cur runs */
	size_t n_items, pos;
	bool resuming;                  /* items[pos] may have started before */
	bool undoing;                   /* a step failed: running the owed undos */
	int *undo_list;                 /* step indexes, in the order to undo */
	size_t n_undo_list, undo_pos;
	upgrade_item undo_item;         /* the undo running */
	char *fail_error;               /* why the order failed */

	units_job *job;                 /* the step's unit call */
	size_t unit_i;                  /* stop/start/restart: which unit */
	char *step_unit;                /* run/health: its transient unit */
	/* runner.c: the step (or undo) steps.c started ended. */
	void (*step_done)(upgrade_runner *u, int error, const char *message);
};

/* steps.c: starts items[pos] (or the undo at undo_pos); ends with
 * u->step_done(). */
void upgrade_step_start(upgrade_runner *u, const upgrade_item *it);
/* "stop cms-app.service", "run notify ..." into buf. */
const char *upgrade_item_name(const upgrade_item *it, char *buf, size_t size);
