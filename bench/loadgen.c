/*
 * loadgen: a Varlink load generator for AF_UNIX stream sockets.
 *
 * Every connection runs in its own thread and keeps DEPTH calls in flight: it sends DEPTH calls, then sends
 * one new call for every reply it reads. Varlink answers the calls of one connection in order, so the
 * oldest outstanding send time belongs to the next reply; latency is measured from that send to the reply.
 * Replies that arrive during the warm-up are not counted. The result is one JSON line on stdout.
 *
 * Build: gcc -O2 -pthread -o dist/bench/loadgen bench/loadgen.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct options {
    const char *socket_path;
    const char *method;
    const char *params;
    const char *params_file;
    int connections;
    int pipeline;
    double duration;
    double warmup;
    double timeout;
    bool allow_errors;
};

/* One prepared call message per params object, each ending in its NUL terminator. */
struct message {
    char *data;
    size_t len;
};

struct sample_buffer {
    uint32_t *v; /* latency in nanoseconds / 16, see record_latency */
    size_t n, cap;
};

struct worker {
    pthread_t thread;
    int index;
    uint64_t calls;     /* replies counted in the measured window */
    uint64_t errors;    /* error replies in the measured window */
    uint64_t all_errors;/* error replies including the warm-up */
    struct sample_buffer samples;
    char failure[256];  /* non-empty when the connection failed */
    double first_error_at;
    char first_error[200];
};

static struct options opt = {
    .params = "{}", .connections = 1, .pipeline = 1, .duration = 5.0, .warmup = 0.0, .timeout = 10.0,
};
static struct message *messages;
static size_t message_count;
static double t_start, t_measure, t_end;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fputs("usage: loadgen --socket PATH --method NAME [--params JSON | --params-file FILE]\n"
          "               [--connections N] [--pipeline DEPTH] [--duration SECONDS] [--warmup SECONDS]\n"
          "               [--timeout SECONDS] [--allow-errors]\n"
          "PATH may be a file system path, unix:PATH, or @NAME / unix:@NAME for an abstract socket.\n",
          stderr);
    exit(2);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) {
        fputs("loadgen: out of memory\n", stderr);
        exit(1);
    }
    return q;
}

static void add_message(const char *params, size_t params_len) {
    static const char head[] = "{\"method\":\"";
    static const char mid[] = "\",\"parameters\":";
    size_t method_len = strlen(opt.method);
    size_t len = (sizeof head - 1) + method_len + (sizeof mid - 1) + params_len + 1 /* } */ + 1 /* NUL */;
    char *m = xrealloc(NULL, len);
    size_t o = 0;
    memcpy(m + o, head, sizeof head - 1), o += sizeof head - 1;
    memcpy(m + o, opt.method, method_len), o += method_len;
    memcpy(m + o, mid, sizeof mid - 1), o += sizeof mid - 1;
    memcpy(m + o, params, params_len), o += params_len;
    m[o++] = '}';
    m[o++] = '\0';
    messages = xrealloc(messages, (message_count + 1) * sizeof *messages);
    messages[message_count].data = m;
    messages[message_count].len = o;
    message_count++;
}

static void load_params_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        fail_usage("cannot open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        size_t skip = strspn(line, " \t");
        if ((size_t)n == skip)
            continue;
        if (line[skip] != '{')
            fail_usage("%s: each line must be one JSON object, got: %.60s", path, line + skip);
        add_message(line + skip, (size_t)n - skip);
    }
    free(line);
    fclose(f);
    if (message_count == 0)
        fail_usage("%s holds no params objects", path);
}

/*
 * Scans one reply (a JSON object) for top-level keys, without building a tree: tells whether the reply
 * names an error and whether more replies to the same call follow ("continues": true).
 */
static void inspect_reply(const char *s, size_t len, bool *is_error, bool *continues) {
    int depth = 0;
    bool in_string = false, expect_key = false;
    const char *key = NULL;
    *is_error = false;
    *continues = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
                if (key) {
                    size_t klen = (size_t)(s + i - key);
                    if (klen == 5 && memcmp(key, "error", 5) == 0)
                        *is_error = true;
                    if (klen == 9 && memcmp(key, "continues", 9) == 0) {
                        size_t j = i + 1;
                        while (j < len && (s[j] == ' ' || s[j] == ':' || s[j] == '\t' || s[j] == '\n'))
                            j++;
                        if (len - j >= 4 && memcmp(s + j, "true", 4) == 0)
                            *continues = true;
                    }
                    key = NULL;
                }
            }
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            if (depth == 1 && expect_key)
                key = s + i + 1;
            expect_key = false;
            break;
        case '{':
        case '[':
            depth++;
            expect_key = (c == '{' && depth == 1);
            break;
        case '}':
        case ']':
            depth--;
            break;
        case ',':
            if (depth == 1)
                expect_key = true;
            break;
        default:
            break;
        }
    }
}

static void record_latency(struct sample_buffer *b, uint64_t ns) {
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 65536;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    /* 16 ns units keep a uint32 good for over a minute of latency. */
    uint64_t units = ns / 16;
    b->v[b->n++] = units > UINT32_MAX ? UINT32_MAX : (uint32_t)units;
}

static int connect_socket(const char *path, char *err, size_t errlen) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strncmp(path, "unix:", 5) == 0)
        path += 5;
    size_t plen = strlen(path);
    if (plen == 0 || plen >= sizeof sa.sun_path) {
        snprintf(err, errlen, "socket path empty or too long: %s", path);
        return -1;
    }
    socklen_t salen;
    if (path[0] == '@') {
        memcpy(sa.sun_path + 1, path + 1, plen - 1); /* abstract: leading NUL, no terminator */
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    } else {
        memcpy(sa.sun_path, path, plen);
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
        snprintf(err, errlen, "connect %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = (time_t)opt.timeout,
                         .tv_usec = (suseconds_t)((opt.timeout - (double)(time_t)opt.timeout) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Appends the next call of this connection to out and notes its send time in the ring. */
struct conn {
    int fd;
    size_t next_msg;
    uint64_t *sent_at; /* ring of DEPTH send times */
    size_t ring_head, ring_count;
    char *out;
    size_t out_len, out_cap;
};

static void queue_call(struct conn *c, uint64_t t) {
    const struct message *m = &messages[c->next_msg];
    c->next_msg = (c->next_msg + 1) % message_count;
    if (c->out_len + m->len > c->out_cap) {
        c->out_cap = (c->out_len + m->len) * 2;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, m->data, m->len);
    c->out_len += m->len;
    c->sent_at[(c->ring_head + c->ring_count) % (size_t)opt.pipeline] = t;
    c->ring_count++;
}

static void *run_worker(void *arg) {
    struct worker *w = arg;
    struct conn c = {0};
    c.sent_at = xrealloc(NULL, (size_t)opt.pipeline * sizeof *c.sent_at);
    c.next_msg = (size_t)w->index % message_count;
    c.fd = connect_socket(opt.socket_path, w->failure, sizeof w->failure);
    if (c.fd < 0)
        goto out;

    size_t in_cap = 1 << 16, in_len = 0;
    char *in = xrealloc(NULL, in_cap);

    uint64_t t = now_ns();
    for (int i = 0; i < opt.pipeline; i++)
        queue_call(&c, t);
    if (send_all(c.fd, c.out, c.out_len) < 0) {
        snprintf(w->failure, sizeof w->failure, "send: %s", strerror(errno));
        goto out_in;
    }
    c.out_len = 0;

    uint64_t measure_ns = (uint64_t)(t_measure * 1e9), end_ns = (uint64_t)(t_end * 1e9);
    for (;;) {
        if (in_len == in_cap) {
            in_cap *= 2;
            in = xrealloc(in, in_cap);
        }
        ssize_t r = recv(c.fd, in + in_len, in_cap - in_len, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            snprintf(w->failure, sizeof w->failure, "recv: %s",
                     errno == EAGAIN ? "no reply within the timeout" : strerror(errno));
            break;
        }
        if (r == 0) {
            snprintf(w->failure, sizeof w->failure, "server closed the connection");
            break;
        }
        in_len += (size_t)r;
        uint64_t t_reply = now_ns();
        bool finished = t_reply >= end_ns;

        size_t start = 0;
        char *nul;
        while ((nul = memchr(in + start, '\0', in_len - start)) != NULL) {
            size_t mlen = (size_t)(nul - (in + start));
            bool is_error, continues;
            inspect_reply(in + start, mlen, &is_error, &continues);
            if (is_error) {
                w->all_errors++;
                if (!w->first_error[0])
                    snprintf(w->first_error, sizeof w->first_error, "%.*s", (int)(mlen < 180 ? mlen : 180),
                             in + start);
            }
            if (!continues) {
                if (c.ring_count == 0) {
                    snprintf(w->failure, sizeof w->failure, "reply without an outstanding call");
                    goto out_in;
                }
                uint64_t sent = c.sent_at[c.ring_head];
                c.ring_head = (c.ring_head + 1) % (size_t)opt.pipeline;
                c.ring_count--;
                if (sent >= measure_ns && t_reply <= end_ns) {
                    w->calls++;
                    if (is_error)
                        w->errors++;
                    record_latency(&w->samples, t_reply - sent);
                }
                if (!finished)
                    queue_call(&c, t_reply);
            }
            start += mlen + 1;
        }
        if (start > 0) {
            memmove(in, in + start, in_len - start);
            in_len -= start;
        }
        if (c.out_len > 0) {
            if (send_all(c.fd, c.out, c.out_len) < 0) {
                snprintf(w->failure, sizeof w->failure, "send: %s", strerror(errno));
                break;
            }
            c.out_len = 0;
        }
        if (finished)
            break;
    }
out_in:
    free(in);
    close(c.fd);
out:
    free(c.sent_at);
    free(c.out);
    return NULL;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double percentile_us(const uint32_t *v, size_t n, double q) {
    if (n == 0)
        return 0.0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] * 16.0 / 1000.0;
}

static double parse_positive(const char *name, const char *s, bool allow_zero) {
    char *end;
    double d = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || d < 0 || (!allow_zero && d == 0))
        fail_usage("--%s wants a %s number, got '%s'", name, allow_zero ? "non-negative" : "positive", s);
    return d;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},      {"method", required_argument, NULL, 'm'},
        {"params", required_argument, NULL, 'p'},      {"params-file", required_argument, NULL, 'f'},
        {"connections", required_argument, NULL, 'c'}, {"pipeline", required_argument, NULL, 'd'},
        {"duration", required_argument, NULL, 't'},    {"warmup", required_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 'T'},     {"allow-errors", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "s:m:p:f:c:d:t:w:T:eh", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': opt.socket_path = optarg; break;
        case 'm': opt.method = optarg; break;
        case 'p': opt.params = optarg; break;
        case 'f': opt.params_file = optarg; break;
        case 'c': opt.connections = (int)parse_positive("connections", optarg, false); break;
        case 'd': opt.pipeline = (int)parse_positive("pipeline", optarg, false); break;
        case 't': opt.duration = parse_positive("duration", optarg, false); break;
        case 'w': opt.warmup = parse_positive("warmup", optarg, true); break;
        case 'T': opt.timeout = parse_positive("timeout", optarg, false); break;
        case 'e': opt.allow_errors = true; break;
        case 'h': fail_usage("Varlink load generator");
        default: fail_usage("unknown option");
        }
    }
    if (optind != argc)
        fail_usage("unexpected argument '%s'", argv[optind]);
    if (!opt.socket_path)
        fail_usage("--socket is required");
    if (!opt.method || !*opt.method || strpbrk(opt.method, "\"\\"))
        fail_usage("--method is required and must be a plain name such as org.varlink.service.GetInfo");
    if (opt.connections < 1 || opt.connections > 4096 || opt.pipeline < 1 || opt.pipeline > 65536)
        fail_usage("--connections must be 1..4096 and --pipeline 1..65536");

    if (opt.params_file) {
        load_params_file(opt.params_file);
    } else {
        size_t skip = strspn(opt.params, " \t\n");
        if (opt.params[skip] != '{')
            fail_usage("--params must be a JSON object");
        add_message(opt.params + skip, strlen(opt.params + skip));
    }

    t_start = now();
    t_measure = t_start + opt.warmup;
    t_end = t_measure + opt.duration;

    struct worker *workers = calloc((size_t)opt.connections, sizeof *workers);
    if (!workers)
        return 1;
    for (int i = 0; i < opt.connections; i++) {
        workers[i].index = i;
        if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) {
            fprintf(stderr, "loadgen: cannot start thread %d\n", i);
            return 1;
        }
    }
    for (int i = 0; i < opt.connections; i++)
        pthread_join(workers[i].thread, NULL);
    double t_done = now();
    double seconds = (t_done < t_end ? t_done : t_end) - t_measure;
    if (seconds <= 0)
        seconds = opt.duration;

    uint64_t calls = 0, errors = 0, all_errors = 0;
    size_t nsamples = 0;
    int failed = 0;
    const char *first_error = NULL;
    for (int i = 0; i < opt.connections; i++) {
        calls += workers[i].calls;
        errors += workers[i].errors;
        all_errors += workers[i].all_errors;
        nsamples += workers[i].samples.n;
        if (workers[i].failure[0]) {
            if (!failed)
                fprintf(stderr, "loadgen: connection %d: %s\n", i, workers[i].failure);
            failed++;
        }
        if (!first_error && workers[i].first_error[0])
            first_error = workers[i].first_error;
    }
    uint32_t *all = xrealloc(NULL, (nsamples ? nsamples : 1) * sizeof *all);
    size_t o = 0;
    for (int i = 0; i < opt.connections; i++) {
        if (workers[i].samples.n)
            memcpy(all + o, workers[i].samples.v, workers[i].samples.n * sizeof *all);
        o += workers[i].samples.n;
        free(workers[i].samples.v);
    }
    qsort(all, nsamples, sizeof *all, cmp_u32);

    printf("{\"calls\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
           "\"max_us\":%.1f,\"errors\":%llu,\"connections\":%d,\"pipeline\":%d,\"failed_connections\":%d}\n",
           (unsigned long long)calls, seconds, (double)calls / seconds, percentile_us(all, nsamples, 0.50),
           percentile_us(all, nsamples, 0.90), percentile_us(all, nsamples, 0.99),
           percentile_us(all, nsamples, 1.0), (unsigned long long)errors, opt.connections, opt.pipeline, failed);
    fflush(stdout);
    free(all);

    if (first_error)
        fprintf(stderr, "loadgen: first error reply: %s\n", first_error);
    if (failed)
        return 3;
    if (all_errors > 0 && !opt.allow_errors) {
        fprintf(stderr, "loadgen: %llu error replies (pass --allow-errors to accept them)\n",
                (unsigned long long)all_errors);
        return 1;
    }
    if (calls == 0) {
        fputs("loadgen: no replies in the measured window\n", stderr);
        return 1;
    }
    return 0;
}
