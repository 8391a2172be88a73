/* identity.c — who this EC2 instance is, from its metadata (imds.h): what a
 * node started from user data needs to be paired with its host record by
 * the leader (docs/ec2.md, "instance_id: auto").
 *
 * A round GETs every value at once (the first GET fetches the token, the
 * others wait for it). When the whole round is in, it ends: a failure that
 * may pass (no answer, 5xx) starts another round after a back-off, one that
 * will not (IMDS off, no instance id, a value that is no value) ends the
 * fetch. The result is handed over from the fetch's own timer, so the
 * callback may free the fetch. */
#include <stddef.h>
#include <time.h>

#include "backoff.h"
#include "imds.h"

#define RETRY_BASE_USEC  (200 * USEC_PER_MSEC)
#define RETRY_CAP_USEC   (5 * USEC_PER_SEC)
#define VALUE_MAX        255

static const struct {
	const char *path;       /* under /latest/meta-data/ */
	size_t offset;          /* in imds_identity */
	bool optional;          /* 404: NULL, not an error */
} fields[] = {
	{ "instance-id", offsetof(imds_identity, instance_id) },
	{ "instance-type", offsetof(imds_identity, instance_type) },
	{ "placement/availability-zone", offsetof(imds_identity, availability_zone) },
	{ "local-ipv4", offsetof(imds_identity, local_ipv4) },
	{ "tags/instance/" IMDS_POOL_TAG, offsetof(imds_identity, pool), true },
};

#define N_FIELDS ELEMENTSOF(fields)

typedef struct field_req {
	imds_identity_fetch *f;
	unsigned i;
} field_req;

struct imds_identity_fetch {
	sd_event *event;
	imds *imds;
	imds_identity_fn cb;
	void *userdata;
	uint64_t deadline;      /* CLOCK_MONOTONIC usec */
	backoff backoff;
	sd_event_source *timer; /* the next round, or handing over the result */
	field_req reqs[N_FIELDS];
	unsigned pending;
	imds_identity id;
	int error;              /* this round: < 0 ends the fetch */
	bool again;             /* this round: worth another */
	bool finished;          /* the timer hands over, not retries */
	char message[256];
};

void imds_identity_done(imds_identity *id) {
	if (!id)
		return;
	free(id->instance_id);
	free(id->instance_type);
	free(id->availability_zone);
	free(id->local_ipv4);
	free(id->pool);
	*id = (imds_identity){};
}

static int dup_field(char **dst, const char *src) {
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int imds_identity_copy(imds_identity *dst, const imds_identity *src) {
	imds_identity c = {};

	if (dup_field(&c.instance_id, src->instance_id) < 0 || dup_field(&c.instance_type, src->instance_type) < 0 ||
	    dup_field(&c.availability_zone, src->availability_zone) < 0 ||
	    dup_field(&c.local_ipv4, src->local_ipv4) < 0 || dup_field(&c.pool, src->pool) < 0) {
		imds_identity_done(&c);
		return -ENOMEM;
	}
	imds_identity_done(dst);
	*dst = c;
	return 0;
}

static uint64_t now_usec(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static char **field_of(imds_identity_fetch *f, unsigned i) {
	return (char **) ((char *) &f->id + fields[i].offset);
}

/* The first line, which must be a plain token: it becomes part of etcd
 * keys (the instance id, the pool) and of the node record. */
static int value_of(const char *body, size_t len, char **out) {
	size_t n = strcspn(body, "\r\n");

	if (n == 0 || n > VALUE_MAX || n > len)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char) body[i] <= ' ' || body[i] == 0x7f || body[i] == '/')
			return -EBADMSG;
	*out = strndup(body, n);
	return *out ? 0 : -ENOMEM;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void arm(imds_identity_fetch *f, uint64_t delay_usec) {
	int r;

	if (f->timer)
		r = sd_event_source_set_time_relative(f->timer, delay_usec) < 0 ||
				    sd_event_source_set_enabled(f->timer, SD_EVENT_ONESHOT) < 0
			    ? -EIO
			    : 0;
	else
		r = sd_event_add_time_relative(f->event, &f->timer, CLOCK_MONOTONIC, delay_usec, 0, on_timer, f);
	if (r < 0) {
		/* Without a timer nothing would ever answer: say so now. */
		f->finished = true;
		f->cb(-ENOMEM, NULL, "instance metadata: cannot arm a timer", f->userdata);
	}
}

static void round_over(imds_identity_fetch *f) {
	if (!f->again || f->error < 0) {
		if (f->error == 0 && f->id.instance_id && strncmp(f->id.instance_id, "i-", 2) != 0) {
			f->error = -EBADMSG;
			snprintf(f->message, sizeof f->message, "instance metadata: instance-id '%.64s' is not an instance id",
				 f->id.instance_id);
		}
		f->finished = true;
		arm(f, 0);
		return;
	}
	uint64_t delay = backoff_next(&f->backoff, backoff_random()), now = now_usec();
	if (now + delay >= f->deadline) {
		char last[200];
		snprintf(last, sizeof last, "%.190s", f->message);
		snprintf(f->message, sizeof f->message, "instance metadata did not answer in time: %.200s", last);
		f->error = -ETIMEDOUT;
		f->finished = true;
		arm(f, 0);
		return;
	}
	arm(f, delay);
}

static void on_field(const imds_reply *r, void *userdata) {
	field_req *q = userdata;
	imds_identity_fetch *f = q->f;
	const char *path = fields[q->i].path;
	int e = 0;

	f->pending--;
	if (r->error == -EHOSTUNREACH || r->error == -EPROTO) {
		f->again = true;
		snprintf(f->message, sizeof f->message, "%s", r->message);
	} else if (r->error < 0) {
		e = r->error == -EFBIG ? -EBADMSG : r->error;
		snprintf(f->message, sizeof f->message, "%s", r->message);
	} else if (r->status == 200) {
		e = value_of(r->body, r->len, field_of(f, q->i));
		if (e == -EBADMSG)
			snprintf(f->message, sizeof f->message, "instance metadata: %s: not a usable value", path);
	} else if (r->status == 404 && fields[q->i].optional) {
		/* No tag, or tags are not in the metadata: the caller decides. */
	} else if (r->status == 404) {
		e = -ENOENT;
		snprintf(f->message, sizeof f->message, "instance metadata has no %s (HTTP 404): not an EC2 instance?",
			 path);
	} else {
		f->again = true;
		snprintf(f->message, sizeof f->message, "instance metadata: %s: HTTP %ld", path, r->status);
	}
	if (e < 0 && f->error == 0)
		f->error = e;
	if (f->pending == 0)
		round_over(f);
}

static int start_round(imds_identity_fetch *f) {
	imds_identity_done(&f->id);
	f->error = 0;
	f->again = false;
	for (unsigned i = 0; i < N_FIELDS; i++) {
		_cleanup_free_ char *path = NULL;
		f->reqs[i] = (field_req) { .f = f, .i = i };
		if (asprintf(&path, "/latest/meta-data/%s", fields[i].path) < 0)
			return -ENOMEM;
		int r = imds_get(f->imds, path, on_field, &f->reqs[i]);
		if (r < 0)
			return r;
		f->pending++;
	}
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	imds_identity_fetch *f = userdata;

	if (f->finished) {
		f->cb(f->error, f->error < 0 ? NULL : &f->id, f->error < 0 ? f->message : NULL, f->userdata);
		return 0;
	}
	int r = start_round(f);
	if (r < 0) {
		/* Requests sent stay in flight and end the round; none sent: end it here. */
		f->error = r;
		snprintf(f->message, sizeof f->message, "instance metadata: out of memory");
		if (f->pending == 0)
			round_over(f);
	}
	return 0;
}

imds_identity_fetch *imds_identity_fetch_free(imds_identity_fetch *f) {
	if (!f)
		return NULL;
	imds_free(f->imds);
	sd_event_source_disable_unref(f->timer);
	sd_event_unref(f->event);
	imds_identity_done(&f->id);
	free(f);
	return NULL;
}

int imds_identity_fetch_start(imds_identity_fetch **out, sd_event *event, const char *endpoint,
			      uint64_t timeout_usec, imds_identity_fn cb, void *userdata) {
	_cleanup_(imds_identity_fetch_freep) imds_identity_fetch *f = NULL;
	int r;

	if (!out || !event || !cb)
		return -EINVAL;
	f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	f->event = sd_event_ref(event);
	f->cb = cb;
	f->userdata = userdata;
	f->deadline = now_usec() + timeout_usec;
	f->backoff = BACKOFF_INIT(RETRY_BASE_USEC, RETRY_CAP_USEC);
	r = imds_new(&f->imds, event, endpoint);
	if (r < 0)
		return r;
	/* The first round from the loop, like every later one. */
	r = sd_event_add_time_relative(event, &f->timer, CLOCK_MONOTONIC, 0, 0, on_timer, f);
	if (r < 0)
		return r;
	*out = TAKE_PTR(f);
	return 0;
}
