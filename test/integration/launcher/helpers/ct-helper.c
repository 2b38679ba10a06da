/* Test payload helper for berth's container tests (static, runs inside a busybox tree).
 *   ct-helper notify MESSAGE [PROGRAM ARGS...]  send MESSAGE as one datagram to $NOTIFY_SOCKET on behalf of the
 *                                                parent process (its PID in SCM_CREDENTIALS, as systemd-notify
 *                                                does; allowed to the container's root), then exec PROGRAM
 *   ct-helper serve-once                         accept one connection on fd 3 and describe who answered
 *   ct-helper reboot | poweroff                  call reboot(2), which ends the PID namespace's init
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <sys/reboot.h>
#include <unistd.h>

static int send_notify(const char *msg) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) { fputs("ct-helper: NOTIFY_SOCKET is not set\n", stderr); return 2; }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof addr.sun_path) return 3;
  memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("ct-helper: socket"); return 4; }
  struct iovec iov = { .iov_base = (void *)msg, .iov_len = strlen(msg) };
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(struct ucred))]; } ctrl;
  memset(&ctrl, 0, sizeof ctrl);
  struct msghdr mh = { .msg_name = &addr, .msg_namelen = offsetof(struct sockaddr_un, sun_path) + len,
                       .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf, .msg_controllen = sizeof ctrl.buf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_CREDENTIALS;
  c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
  struct ucred uc = { .pid = getppid(), .uid = getuid(), .gid = getgid() };
  memcpy(CMSG_DATA(c), &uc, sizeof uc);
  if (sendmsg(fd, &mh, 0) < 0) {
    perror("ct-helper: sendmsg");
    return 5;
  }
  close(fd);
  return 0;
}

static int serve_once(void) {
  /* The socket may be non-blocking (its flags are shared with whoever created it): wait for a client first. */
  struct pollfd p = { .fd = 3, .events = POLLIN };
  if (poll(&p, 1, 30000) != 1) { fputs("ct-helper: nobody connected to fd 3\n", stderr); return 6; }
  int c = accept(3, NULL, NULL);
  if (c < 0) { perror("ct-helper: accept on fd 3"); return 6; }
  char line[512];
  const char *fds = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES");
  int n = snprintf(line, sizeof line, "served-by-container pid=%d uid=%d listen_fds=%s names=%s\n",
                   (int)getpid(), (int)getuid(), fds ? fds : "-", names ? names : "-");
  if (write(c, line, (size_t)n) != n) return 7;
  close(c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "notify") == 0) {
    int r = send_notify(argv[2]);
    if (r != 0) return r;
    if (argc > 3) { execv(argv[3], argv + 3); perror("ct-helper: exec"); return 127; }
    return 0;
  }
  if (argc == 2 && strcmp(argv[1], "serve-once") == 0) return serve_once();
  if (argc == 2 && (strcmp(argv[1], "reboot") == 0 || strcmp(argv[1], "poweroff") == 0)) {
    sync();
    if (reboot(strcmp(argv[1], "reboot") == 0 ? RB_AUTOBOOT : RB_POWER_OFF) < 0) { perror("ct-helper: reboot"); return 8; }
    return 0;
  }
  fputs("usage: ct-helper notify MESSAGE [PROGRAM ARGS...] | serve-once | reboot | poweroff\n", stderr);
  return 64;
}
