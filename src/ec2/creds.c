/* creds.c — AWS credentials from the environment, the shared credentials
 * file and an instance metadata document (see ec2.h). The fetching from
 * IMDS is asynchronous and lives with the client (client.c); what is here
 * does no network I/O.
 *
 * The shared credentials file is INI. No Debian library in our set reads
 * INI, and the subset AWS uses is small: "[name]" sections, "key = value"
 * lines, '#' and ';' comments. Values are trimmed; nothing else is
 * interpreted. */
#include <jansson.h>
#include <stdarg.h>

#include "ec2.h"

static char *wipe(char *s) {
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
	return NULL;
}

void ec2_credentials_done(ec2_credentials *c) {
	if (!c)
		return;
	free(c->access_key_id);
	wipe(c->secret_access_key);
	wipe(c->session_token);
	*c = (ec2_credentials){};
}

int ec2_credentials_copy(const ec2_credentials *from, ec2_credentials *to) {
	ec2_credentials c = { .expiration = from->expiration };

	memcpy(c.source, from->source, sizeof c.source);
	c.access_key_id = strdup(from->access_key_id);
	c.secret_access_key = strdup(from->secret_access_key);
	c.session_token = from->session_token ? strdup(from->session_token) : NULL;
	if (!c.access_key_id || !c.secret_access_key || (from->session_token && !c.session_token)) {
		ec2_credentials_done(&c);
		return -ENOMEM;
	}
	*to = c;
	return 0;
}

static int set_err(char *err, size_t size, const char *fmt, ...) _printf_(3, 4);
static int set_err(char *err, size_t size, const char *fmt, ...) {
	va_list ap;

	if (err && size) {
		va_start(ap, fmt);
		vsnprintf(err, size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int ec2_credentials_from_env(ec2_credentials *out) {
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");
	ec2_credentials c = {};

	if (!token || !*token)
		token = getenv("AWS_SECURITY_TOKEN");          /* the legacy name */
	if ((!id || !*id) && (!secret || !*secret))
		return -ENOENT;
	if (!id || !*id || !secret || !*secret)
		return -EINVAL;
	c.access_key_id = strdup(id);
	c.secret_access_key = strdup(secret);
	c.session_token = token && *token ? strdup(token) : NULL;
	snprintf(c.source, sizeof c.source, "env");
	if (!c.access_key_id || !c.secret_access_key || (token && *token && !c.session_token)) {
		ec2_credentials_done(&c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

static char *trim(char *s) {
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

int ec2_credentials_from_file(const char *path, const char *profile, ec2_credentials *out, char *err,
			      size_t err_size) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ char *line = NULL;
	ec2_credentials c = {};
	size_t cap = 0;
	unsigned lineno = 0;
	bool in_profile = false, found = false;
	int r = 0;

	if (!f) {
		r = -errno;
		if (r != -ENOENT)
			set_err(err, err_size, "%s: %s", path, strerror(-r));
		return r;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *l = trim(line), *eq;
		lineno++;
		if (*l == '\0' || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']');
			if (!end || *trim(end + 1) != '\0') {
				r = set_err(err, err_size, "%s:%u: malformed section header", path, lineno);
				break;
			}
			*end = '\0';
			in_profile = streq(trim(l + 1), profile);
			found = found || in_profile;
			continue;
		}
		if (!in_profile)
			continue;
		eq = strchr(l, '=');
		if (!eq) {
			r = set_err(err, err_size, "%s:%u: expected 'key = value'", path, lineno);
			break;
		}
		*eq = '\0';
		const char *key = trim(l);
		char *value = trim(eq + 1), **dst = NULL;
		if (streq(key, "aws_access_key_id"))
			dst = &c.access_key_id;
		else if (streq(key, "aws_secret_access_key"))
			dst = &c.secret_access_key;
		else if (streq(key, "aws_session_token") || streq(key, "aws_security_token"))
			dst = &c.session_token;
		if (dst) {
			wipe(*dst);
			*dst = strdup(value);
			if (!*dst)
				r = -ENOMEM;
		}
		/* Other keys (region, output, ...) are not ours. */
		explicit_bzero(value, strlen(value));
		if (r < 0)
			break;
	}
	if (line)
		explicit_bzero(line, cap);
	if (r == 0 && !found)
		r = -ENOENT;
	if (r == 0 && (!c.access_key_id || !c.secret_access_key))
		r = set_err(err, err_size, "%s: profile [%s] lacks aws_access_key_id or aws_secret_access_key", path,
			    profile);
	if (r < 0) {
		ec2_credentials_done(&c);
		return r;
	}
	snprintf(c.source, sizeof c.source, "file");
	*out = c;
	return 0;
}

int ec2_credentials_from_imds_json(const char *json, size_t len, ec2_credentials *out, char *err,
				   size_t err_size) {
	json_auto_t *doc = json_loadb(json, len, 0, NULL);
	const char *code, *id, *secret, *token, *exp;
	ec2_credentials c = {};

	if (!json_is_object(doc))
		return set_err(err, err_size, "instance metadata credentials are not a JSON object");
	code = json_string_value(json_object_get(doc, "Code"));
	if (code && !streq(code, "Success"))
		return set_err(err, err_size, "instance metadata credentials: Code %.64s", code);
	id = json_string_value(json_object_get(doc, "AccessKeyId"));
	secret = json_string_value(json_object_get(doc, "SecretAccessKey"));
	token = json_string_value(json_object_get(doc, "Token"));
	exp = json_string_value(json_object_get(doc, "Expiration"));
	if (!id || !*id || !secret || !*secret)
		return set_err(err, err_size, "instance metadata credentials lack AccessKeyId or SecretAccessKey");
	time_t expires = 0;
	if (exp && (ec2xml_parse_time(exp, &expires) < 0 || expires <= 0))
		return set_err(err, err_size, "instance metadata credentials: bad Expiration '%.40s'", exp);
	c.expiration = (uint64_t) expires;
	c.access_key_id = strdup(id);
	c.secret_access_key = strdup(secret);
	c.session_token = token && *token ? strdup(token) : NULL;
	snprintf(c.source, sizeof c.source, "imds");
	/* jansson holds copies of the secrets too: wipe them before it frees. */
	if (secret)
		explicit_bzero((char *) secret, strlen(secret));
	if (token)
		explicit_bzero((char *) token, strlen(token));
	if (!c.access_key_id || !c.secret_access_key || (token && *token && !c.session_token)) {
		ec2_credentials_done(&c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}
