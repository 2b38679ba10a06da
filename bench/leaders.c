/*
 * leaders: cheap machine leaders and a notify receiver for the benchmark.
 *
 *   leaders plain N            fork N children that only wait (no exec: a fork of this small program costs
 *                              far less than a `sleep` process each)
 *   leaders userns N BASE STEP fork N children, each in a new user namespace whose uid_map and gid_map are
 *                              written from here as "0 BASE+i*STEP 65536"
 *   leaders notify PATH        bind an AF_UNIX datagram socket at PATH and print each message on one line
 *
 * plain/userns print one child PID per line, then "ready", then wait until stdin reaches EOF (or SIGTERM),
 * kill every child with SIGKILL, reap them and exit. Children also die with their parent (PR_SET_PDEATHSIG),
 * so nothing is left behind if the benchmark itself is killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t *children;
static size_t nchildren;

static void die(const char *what) {
    fprintf(stderr, "leaders: %s: %s\n", what, strerror(errno));
    for (size_t i = 0; i < nchildren; i++)
        kill(children[i], SIGKILL);
    exit(1);
}

static void child_wait_forever(pid_t parent, int ready_fd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    prctl(PR_SET_NAME, "bn-leader");
    if (ready_fd >= 0) {
        char c = unshare(CLONE_NEWUSER) == 0 ? 'u' : 'e';
        if (write(ready_fd, &c, 1) != 1)
            _exit(1);
        close(ready_fd);
    }
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        if (devnull > 2)
            close(devnull);
    }
    for (;;)
        pause();
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        die(path);
    ssize_t n = write(fd, text, strlen(text));
    if (n != (ssize_t)strlen(text))
        die(path);
    close(fd);
}

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int spawn(size_t n, int userns, uint64_t base, uint64_t step) {
    children = calloc(n ? n : 1, sizeof *children);
    if (!children)
        die("calloc");
    pid_t self = getpid();
    for (size_t i = 0; i < n; i++) {
        int p[2] = {-1, -1};
        if (userns && pipe2(p, O_CLOEXEC) < 0)
            die("pipe");
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            if (userns)
                close(p[0]);
            child_wait_forever(self, userns ? p[1] : -1);
        }
        children[nchildren++] = pid;
        if (userns) {
            close(p[1]);
            char c = 0;
            if (read(p[0], &c, 1) != 1 || c != 'u') {
                errno = c == 'e' ? EPERM : EIO;
                die("unshare(CLONE_NEWUSER) in the child");
            }
            close(p[0]);
            char path[64], map[96];
            snprintf(map, sizeof map, "0 %" PRIu64 " 65536\n", base + (uint64_t)i * step);
            snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
            write_file(path, map);
            snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
            write_file(path, map);
        }
        printf("%d\n", (int)pid);
    }
    printf("ready\n");
    fflush(stdout);

    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    char buf[256];
    while (!stop) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EINTR))
            break;
    }
    for (size_t i = 0; i < nchildren; i++)
        kill(children[i], SIGKILL);
    for (size_t i = 0; i < nchildren; i++)
        while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR)
            ;
    return 0;
}

static int notify(const char *path) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        die(path);
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind");
    chmod(path, 0666);
    printf("ready\n");
    fflush(stdout);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    char buf[4096];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("recv");
        }
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] == '\n' || buf[i] == '\0')
                buf[i] = ' ';
        buf[r] = '\0';
        printf("%s\n", buf);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "plain") == 0)
        return spawn(strtoull(argv[2], NULL, 10), 0, 0, 0);
    if (argc == 5 && strcmp(argv[1], "userns") == 0)
        return spawn(strtoull(argv[2], NULL, 10), 1, strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "notify") == 0)
        return notify(argv[2]);
    fputs("usage: leaders plain N | leaders userns N BASE STEP | leaders notify PATH\n", stderr);
    return 2;
}
