//go:build ignore

// (The constraint above keeps the go tool from treating this file as cgo.)

/*
 * pause: peapod's per-pod infra process.
 *
 * It holds the pod's namespaces (joins the pinned netns, unshares IPC and
 * UTS, optionally forks a PID-1 reaper in a new PID namespace), is the child
 * subreaper of the pod's containers, copies their stdout/stderr into
 * CRI-format log files and records their exit statuses in exit files.
 * Nothing here depends on peapod staying alive.
 *
 * Usage:
 *   pause --dir DIR [--netns PATH] [--ipcns PATH] [--utsns PATH]
 *         [--host-ipc] [--host-uts] [--hostname NAME] [--share-pid]
 *         [--log FILE] [--ready-fd N]
 *   pause --hold                                   (see hold)
 *   pause --exec-shim STATUSFILE PIDFILE ARGV...   (see exec_shim)
 *
 * Namespaces: without --netns pause stays in the caller's network namespace
 * (a hostNetwork pod). IPC and UTS are new namespaces unless --ipcns/--utsns
 * name existing ones to join (those a user-namespace holder made) or
 * --host-ipc/--host-uts keep the caller's (hostIPC, hostNetwork). The
 * hostname is set only in a UTS namespace that is not the host's.
 *
 * Startup handshake on the ready fd (a socketpair end from peapod): after the
 * namespaces are set up pause reads one byte (peapod places it in its cgroup
 * meanwhile), then forks the PID-1 reaper, listens on DIR/pause.sock and
 * writes "READY <pid> <pidns-pid>\n".
 *
 * Protocol on pause.sock: one request per connection. The client writes
 * NUL-terminated fields and shuts down its write side; pause answers with
 * one text reply and closes.
 *   PING\0 | STATUS\0
 *       -> "OK <pid> <pidns-pid>\n" then per container
 *          "C <id> <pid> <state> <exitcode>\n" (state: launching, running,
 *          exited, failed)
 *   LAUNCH\0 id\0 logpath\0 exitpath\0 pidpath\0 argc\0 argv...\0 env...\0
 *       -> "OK <pid>\n" once the launcher exited 0 and wrote the pid file;
 *          "ERR <exitcode> <signal> <message>\n" otherwise.
 *   LAUNCH2\0 flags\0 id\0 ... (as LAUNCH)
 *       flags is a string of letters: 'i' gives the container a stdin pipe
 *       whose write end pause keeps; 't' makes pause create a console
 *       socket, insert "--console-socket <path>" before the last argument
 *       of argv (the container ID of `run -d ... ID`) and keep the pty
 *       master the runtime sends there: its output is logged as stdout and
 *       it serves as the container's stdin.
 *   STDIN\0 id\0
 *       -> "OK pipe\n" or "OK tty\n" with the stdin write end (a dup of
 *          the pipe or of the pty master) attached as SCM_RIGHTS.
 *   CLOSESTDIN\0 id\0      pause closes its stdin pipe write end (the
 *       container reads EOF once every copy is closed) -> "OK\n"
 *   RESIZE\0 id\0 cols\0 rows\0   TIOCSWINSZ on the pty master -> "OK\n"
 *   ATTACH\0 id\0 stream\0   (stream: stdout or stderr)
 *       -> "OK\n", then the raw bytes the container writes on that stream
 *          from now on, until it closes it; a subscriber that cannot keep
 *          up (its socket buffer is full) is dropped.
 *
 * The exit file, written atomically when the container's main process died
 * and its output pipes were drained (or 2s later if something else holds the
 * pipes open), is "<exitcode> <signal> <finishedAt RFC3339Nano>\n"; a death
 * by signal gives exitcode 128+signal.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SOCK_NAME "pause.sock"
#define MAX_LINE (16 * 1024)     /* CRI: longer lines are split as P */
#define MAX_REQ (1024 * 1024)    /* largest accepted request */
#define MAX_CONNS 32
#define DRAIN_MS 2000            /* wait for pipe EOF after exit at most */
#define RING 64                  /* reaped-but-unknown pids remembered */
#define MAX_SUBS 8               /* attach subscribers per stream */

enum cstate { LAUNCHING, RUNNING, EXITED, FAILED };
static const char *state_name[] = {"launching", "running", "exited", "failed"};

struct lbuf {
	char *buf; /* lazily allocated, MAX_LINE bytes */
	size_t len;
};

struct ctr {
	struct ctr *next;
	char *id, *logpath, *exitpath, *pidpath;
	enum cstate state;
	pid_t launcher, pid;
	int conn;          /* connection waiting for the launch reply, or -1 */
	int fds[2];        /* stdout, stderr read ends, -1 once closed */
	struct lbuf lb[2];
	int logfd;
	dev_t logdev;
	ino_t logino;
	int stdin_w;       /* write end of the stdin pipe, or -1 */
	int terminal;      /* launched with a console socket */
	int console;       /* console socket listener while launching, or -1 */
	int master;        /* pty master (also in fds[0] while open), or -1 */
	int subs[2][MAX_SUBS]; /* ATTACH subscribers per stream, -1 = free */
	int code, sig;     /* exit status once EXITED */
	struct timespec finished;
	int exit_written;
	int64_t deadline;  /* ms (monotonic) when to write the exit anyway */
};

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

static struct ctr *ctrs;
static struct conn conns[MAX_CONNS];
static pid_t pidns_child;
static struct {
	pid_t pid;
	int status;
	int64_t at;
} ring[RING];
static int ring_next;

static void logf_(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, n) < 0) {
		/* nothing to do */
	}
}

static void die(const char *what)
{
	logf_("pause: %s: %s", what, strerror(errno));
	_exit(1);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* fmt_time writes ts as RFC3339 with nanoseconds in UTC (30 bytes + NUL). */
static void fmt_time(const struct timespec *ts, char out[64])
{
	struct tm tm;
	size_t n;
	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 64 - n, ".%09uZ",
		 (unsigned)(ts->tv_nsec % 1000000000));
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* ---- logs ---------------------------------------------------------------- */

/* log_open (re)opens c->logpath if it is not open or was removed/replaced. */
static int log_open(struct ctr *c)
{
	struct stat st;
	if (c->logfd >= 0) {
		if (stat(c->logpath, &st) == 0 && st.st_dev == c->logdev &&
		    st.st_ino == c->logino)
			return 0;
		close_fd(&c->logfd);
	}
	c->logfd = open(c->logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			0640);
	if (c->logfd < 0) {
		logf_("pause: open log %s: %s", c->logpath, strerror(errno));
		return -1;
	}
	if (fstat(c->logfd, &st) == 0) {
		c->logdev = st.st_dev;
		c->logino = st.st_ino;
	}
	return 0;
}

static void log_line(struct ctr *c, int stream, const char *p, size_t n,
		     int partial)
{
	char prefix[96];
	char ts[64];
	struct timespec now;
	struct iovec iov[3];
	ssize_t w;
	size_t total;

	if (c->logfd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	fmt_time(&now, ts);
	snprintf(prefix, sizeof(prefix), "%s %s %c ", ts,
		 stream ? "stderr" : "stdout", partial ? 'P' : 'F');
	iov[0].iov_base = prefix;
	iov[0].iov_len = strlen(prefix);
	iov[1].iov_base = (void *)p;
	iov[1].iov_len = n;
	iov[2].iov_base = "\n";
	iov[2].iov_len = 1;
	total = iov[0].iov_len + n + 1;
	w = writev(c->logfd, iov, 3);
	if (w >= 0 && (size_t)w < total) {
		/* Short write (disk full?): finish it byte-exactly. */
		size_t off = w;
		int i;
		for (i = 0; i < 3 && off >= iov[i].iov_len; i++)
			off -= iov[i].iov_len;
		for (; i < 3; i++) {
			const char *b = (const char *)iov[i].iov_base + off;
			size_t left = iov[i].iov_len - off;
			off = 0;
			while (left > 0) {
				ssize_t k = write(c->logfd, b, left);
				if (k <= 0)
					return;
				b += k;
				left -= k;
			}
		}
	}
}

/* log_data splits data of one stream into CRI lines, buffering a trailing
 * partial line; eof flushes it. */
static void log_data(struct ctr *c, int s, const char *p, size_t n, int eof)
{
	struct lbuf *lb = &c->lb[s];
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (lb->len == 0 && nl && take <= MAX_LINE) {
			log_line(c, s, p, take, 0);
			p += take + 1;
			n -= take + 1;
			continue;
		}
		if (!lb->buf) {
			lb->buf = malloc(MAX_LINE);
			if (!lb->buf) {
				/* Out of memory: write what we have as partial. */
				log_line(c, s, p, take, !nl);
				p += take + (nl ? 1 : 0);
				n -= take + (nl ? 1 : 0);
				continue;
			}
		}
		size_t room = MAX_LINE - lb->len;
		size_t k = take < room ? take : room;
		memcpy(lb->buf + lb->len, p, k);
		lb->len += k;
		p += k;
		n -= k;
		if (lb->len == MAX_LINE && (k < take || !nl)) {
			log_line(c, s, lb->buf, lb->len, 1);
			lb->len = 0;
			continue;
		}
		if (nl && k == take) {
			log_line(c, s, lb->buf, lb->len, 0);
			lb->len = 0;
			p++;
			n--;
		}
	}
	if (eof && lb->len > 0) {
		log_line(c, s, lb->buf, lb->len, 0);
		lb->len = 0;
	}
	if (lb->len == 0 && lb->buf) {
		free(lb->buf);
		lb->buf = NULL;
	}
}

/* ---- exits --------------------------------------------------------------- */

static void write_exit(struct ctr *c)
{
	char tmp[4096], line[128], ts[64];
	int fd, n;

	c->exit_written = 1;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", c->exitpath) >= (int)sizeof(tmp))
		return;
	fmt_time(&c->finished, ts);
	n = snprintf(line, sizeof(line), "%d %d %s\n", c->code, c->sig, ts);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		logf_("pause: write exit %s: %s", tmp, strerror(errno));
		return;
	}
	if (write(fd, line, n) != n || close(fd) < 0 ||
	    rename(tmp, c->exitpath) < 0) {
		logf_("pause: write exit %s: %s", c->exitpath, strerror(errno));
		unlink(tmp);
	}
}

/* maybe_finish writes the exit file once the process exited and its pipes
 * are drained (or the drain deadline passed), and closes the log. */
static void maybe_finish(struct ctr *c, int64_t now)
{
	if (c->state != EXITED || c->exit_written)
		goto pipes;
	if (c->fds[0] >= 0 || c->fds[1] >= 0) {
		if (now < c->deadline)
			return;
	}
	write_exit(c);
pipes:
	if (c->fds[0] < 0 && c->fds[1] < 0)
		close_fd(&c->logfd);
}

static void set_exited(struct ctr *c, int status, const struct timespec *at)
{
	c->state = EXITED;
	if (WIFSIGNALED(status)) {
		c->sig = WTERMSIG(status);
		c->code = 128 + c->sig;
	} else {
		c->sig = 0;
		c->code = WEXITSTATUS(status);
	}
	c->finished = *at;
	c->deadline = now_ms() + DRAIN_MS;
	close_fd(&c->stdin_w);
	close_fd(&c->master);
	maybe_finish(c, now_ms());
}

/* ---- connections --------------------------------------------------------- */

static void reply(int fd, const char *msg)
{
	size_t n = strlen(msg);
	while (n > 0) {
		ssize_t w = send(fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		msg += w;
		n -= w;
	}
}

/* drop_subs closes every subscriber of stream s. */
static void drop_subs(struct ctr *c, int s)
{
	int i;
	for (i = 0; i < MAX_SUBS; i++)
		close_fd(&c->subs[s][i]);
}

/* fan_out copies raw output of stream s to its subscribers, dropping any
 * that cannot take all of it at once. */
static void fan_out(struct ctr *c, int s, const char *p, size_t n)
{
	int i;
	for (i = 0; i < MAX_SUBS; i++) {
		ssize_t w;
		if (c->subs[s][i] < 0)
			continue;
		do
			w = send(c->subs[s][i], p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w != (ssize_t)n)
			close_fd(&c->subs[s][i]);
	}
}

static void free_ctr(struct ctr *c)
{
	close_fd(&c->fds[0]);
	close_fd(&c->fds[1]);
	close_fd(&c->logfd);
	close_fd(&c->conn);
	close_fd(&c->stdin_w);
	close_fd(&c->console);
	close_fd(&c->master);
	drop_subs(c, 0);
	drop_subs(c, 1);
	free(c->lb[0].buf);
	free(c->lb[1].buf);
	free(c->id);
	free(c->logpath);
	free(c->exitpath);
	free(c->pidpath);
	free(c);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		die("strdup");
	return d;
}

static void do_status(int fd)
{
	char line[512];
	struct ctr *c;
	snprintf(line, sizeof(line), "OK %d %d\n", (int)getpid(),
		 (int)pidns_child);
	reply(fd, line);
	for (c = ctrs; c; c = c->next) {
		snprintf(line, sizeof(line), "C %s %d %s %d\n", c->id,
			 (int)c->pid, state_name[c->state],
			 c->state == EXITED ? c->code : -1);
		reply(fd, line);
	}
}

/* child_exec runs in the forked launcher: never returns. */
static void child_exec(char **argv, char **envp, int in, int out, int err)
{
	sigset_t all;
	int devnull, i;

	for (i = 1; i < NSIG; i++)
		signal(i, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	devnull = open("/dev/null", O_RDWR);
	if (in < 0)
		in = devnull;
	if (devnull < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(err, 2) < 0)
		_exit(126);
	if (syscall(SYS_close_range, 3, ~0U, 0) < 0) {
		for (i = 3; i < 1024; i++)
			close(i);
	}
	execvpe(argv[0], argv, envp);
	_exit(127);
}

/* console_listen creates the console socket for container id in the
 * current directory (the sandbox dir) and returns the listener; path gets
 * an absolute name for it that is short whatever the directory. */
static int console_listen(const char *id, char *path, size_t n)
{
	struct sockaddr_un sa;
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "console-%s.sock",
			     id) >= sizeof(sa.sun_path) ||
	    (size_t)snprintf(path, n, "/proc/%d/cwd/%s", (int)getpid(),
			     sa.sun_path) >= n) {
		close(l);
		errno = ENAMETOOLONG;
		return -1;
	}
	unlink(sa.sun_path);
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 4) < 0) {
		close(l);
		return -1;
	}
	return l;
}

static void console_unlink(const char *id)
{
	char name[128];
	snprintf(name, sizeof(name), "console-%s.sock", id);
	unlink(name);
}

/* console_receive takes the pty master the runtime sent on the console
 * socket, or returns -1. */
static int console_receive(int l)
{
	char buf[256], ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh;
	struct cmsghdr *cm;
	int conn, fd = -1;

	conn = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return -1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl;
	mh.msg_controllen = sizeof(ctl);
	if (recvmsg(conn, &mh, MSG_CMSG_CLOEXEC) >= 0) {
		cm = CMSG_FIRSTHDR(&mh);
		if (cm && cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	}
	close(conn);
	return fd;
}

/* do_launch handles LAUNCH (flags "") and LAUNCH2 (f[0] is the flags). */
static void do_launch(int fd, char **f, int nf, const char *flags)
{
	struct ctr *c, **pp;
	int argc, outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1};
	int i, s;
	char **argv = NULL, **envp = NULL;
	char msg[256], console[160];
	pid_t pid;

	/* id log exit pidfile argc argv... env... */
	if (nf < 6 || (argc = atoi(f[5])) < 1 || 6 + argc > nf) {
		reply(fd, "ERR -1 0 malformed LAUNCH request\n");
		close(fd);
		return;
	}
	for (pp = &ctrs; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, f[1]) != 0)
			continue;
		if ((*pp)->state == LAUNCHING || (*pp)->state == RUNNING ||
		    (*pp)->fds[0] >= 0 || (*pp)->fds[1] >= 0) {
			reply(fd, "ERR -1 0 container already exists\n");
			close(fd);
			return;
		}
		c = *pp;
		*pp = c->next;
		free_ctr(c);
		break;
	}
	argv = calloc(argc + 3, sizeof(char *));
	envp = calloc(nf - 6 - argc + 1, sizeof(char *));
	c = calloc(1, sizeof(*c));
	if (!argv || !envp || !c)
		die("calloc");
	memcpy(argv, f + 6, argc * sizeof(char *));
	memcpy(envp, f + 6 + argc, (nf - 6 - argc) * sizeof(char *));
	c->id = xstrdup(f[1]);
	c->logpath = xstrdup(f[2]);
	c->exitpath = xstrdup(f[3]);
	c->pidpath = xstrdup(f[4]);
	c->fds[0] = c->fds[1] = c->logfd = c->conn = -1;
	c->stdin_w = c->console = c->master = -1;
	for (s = 0; s < 2; s++)
		for (i = 0; i < MAX_SUBS; i++)
			c->subs[s][i] = -1;

	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    (strchr(flags, 'i') && pipe2(inp, O_CLOEXEC) < 0)) {
		snprintf(msg, sizeof(msg), "ERR -1 0 pipe: %s\n", strerror(errno));
		goto fail;
	}
	if (strchr(flags, 't')) {
		c->terminal = 1;
		c->console = console_listen(c->id, console, sizeof(console));
		if (c->console < 0) {
			snprintf(msg, sizeof(msg), "ERR -1 0 console socket: %s\n",
				 strerror(errno));
			goto fail;
		}
		/* run ... --console-socket PATH ID */
		argv[argc + 1] = argv[argc - 1];
		argv[argc - 1] = "--console-socket";
		argv[argc] = console;
	}
	/* Stale pid and exit files from an earlier run must not be mistaken. */
	unlink(c->pidpath);
	unlink(c->exitpath);
	pid = fork();
	if (pid < 0) {
		snprintf(msg, sizeof(msg), "ERR -1 0 fork: %s\n", strerror(errno));
		goto fail;
	}
	if (pid == 0)
		child_exec(argv, envp, inp[0], outp[1], errp[1]);
	close(outp[1]);
	close(errp[1]);
	close_fd(&inp[0]);
	c->stdin_w = inp[1];
	fcntl(outp[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	c->fds[0] = outp[0];
	c->fds[1] = errp[0];
	c->launcher = pid;
	c->state = LAUNCHING;
	c->conn = fd;
	log_open(c);
	c->next = ctrs;
	ctrs = c;
	free(argv);
	free(envp);
	return;
fail:
	close_fd(&outp[0]);
	close_fd(&outp[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	close_fd(&inp[0]);
	close_fd(&inp[1]);
	if (c->console >= 0)
		console_unlink(c->id);
	reply(fd, msg);
	close(fd);
	free(argv);
	free(envp);
	free_ctr(c);
}

static struct ctr *find_ctr(const char *id)
{
	struct ctr *c;
	for (c = ctrs; c; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

/* send_fd replies msg with fd attached (SCM_RIGHTS). */
static void send_fd(int conn, const char *msg, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {(void *)msg, strlen(msg)};
	struct msghdr mh;
	struct cmsghdr *cm;

	memset(&mh, 0, sizeof(mh));
	memset(ctl, 0, sizeof(ctl));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl;
	mh.msg_controllen = sizeof(ctl);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (sendmsg(conn, &mh, MSG_NOSIGNAL) < 0)
		logf_("pause: send stdin fd: %s", strerror(errno));
}

/* do_stdio handles STDIN, CLOSESTDIN, RESIZE and ATTACH; it closes fd
 * unless it keeps it as an ATTACH subscriber. */
static void do_stdio(int fd, char **f, int nf)
{
	struct ctr *c = nf >= 2 ? find_ctr(f[1]) : NULL;
	const char *err = NULL;
	int i, s;

	if (!c) {
		err = "ERR -1 0 no such container\n";
	} else if (c->state != RUNNING) {
		err = "ERR -1 0 container is not running\n";
	} else if (!strcmp(f[0], "STDIN")) {
		if (c->master >= 0)
			send_fd(fd, "OK tty\n", c->master);
		else if (c->stdin_w >= 0)
			send_fd(fd, "OK pipe\n", c->stdin_w);
		else
			err = "ERR -1 0 container has no stdin\n";
	} else if (!strcmp(f[0], "CLOSESTDIN")) {
		close_fd(&c->stdin_w);
		reply(fd, "OK\n");
	} else if (!strcmp(f[0], "RESIZE")) {
		struct winsize ws;
		memset(&ws, 0, sizeof(ws));
		if (nf < 4)
			err = "ERR -1 0 malformed RESIZE request\n";
		else if (c->master < 0)
			err = "ERR -1 0 container has no terminal\n";
		else {
			ws.ws_col = atoi(f[2]);
			ws.ws_row = atoi(f[3]);
			if (ioctl(c->master, TIOCSWINSZ, &ws) < 0)
				err = "ERR -1 0 TIOCSWINSZ failed\n";
			else
				reply(fd, "OK\n");
		}
	} else { /* ATTACH */
		s = nf >= 3 && !strcmp(f[2], "stderr") ? 1 : 0;
		if (nf < 3 || (s == 0 && strcmp(f[2], "stdout"))) {
			err = "ERR -1 0 malformed ATTACH request\n";
		} else if (c->fds[s] < 0) {
			err = "ERR -1 0 stream is closed\n";
		} else {
			for (i = 0; i < MAX_SUBS && c->subs[s][i] >= 0; i++)
				;
			if (i == MAX_SUBS) {
				err = "ERR -1 0 too many attached clients\n";
			} else {
				int sz = 1 << 20;
				setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz,
					   sizeof(sz));
				reply(fd, "OK\n");
				c->subs[s][i] = fd;
				return;
			}
		}
	}
	if (err)
		reply(fd, err);
	close(fd);
}

static void handle_request(struct conn *cn)
{
	char *f[4096];
	int nf = 0;
	size_t i = 0;
	int fd = cn->fd;

	while (i < cn->len && nf < (int)(sizeof(f) / sizeof(f[0]))) {
		char *z = memchr(cn->buf + i, '\0', cn->len - i);
		if (!z)
			break;
		f[nf++] = cn->buf + i;
		i = z - cn->buf + 1;
	}
	cn->fd = -1;
	if (nf == 0) {
		reply(fd, "ERR -1 0 empty request\n");
		close(fd);
	} else if (!strcmp(f[0], "PING") || !strcmp(f[0], "STATUS")) {
		do_status(fd);
		close(fd);
	} else if (!strcmp(f[0], "LAUNCH")) {
		do_launch(fd, f, nf, ""); /* takes over fd */
	} else if (!strcmp(f[0], "LAUNCH2") && nf > 1) {
		do_launch(fd, f + 1, nf - 1, f[1]);
	} else if (!strcmp(f[0], "STDIN") || !strcmp(f[0], "CLOSESTDIN") ||
		   !strcmp(f[0], "RESIZE") || !strcmp(f[0], "ATTACH")) {
		do_stdio(fd, f, nf); /* may keep fd */
	} else {
		reply(fd, "ERR -1 0 unknown request\n");
		close(fd);
	}
	free(cn->buf);
	cn->buf = NULL;
	cn->len = cn->cap = 0;
}

static void conn_read(struct conn *cn)
{
	for (;;) {
		if (cn->len == cn->cap) {
			size_t ncap = cn->cap ? cn->cap * 2 : 1024;
			char *nb;
			if (ncap > MAX_REQ) {
				reply(cn->fd, "ERR -1 0 request too large\n");
				goto drop;
			}
			nb = realloc(cn->buf, ncap);
			if (!nb)
				goto drop;
			cn->buf = nb;
			cn->cap = ncap;
		}
		ssize_t n = read(cn->fd, cn->buf + cn->len, cn->cap - cn->len);
		if (n > 0) {
			cn->len += n;
			continue;
		}
		if (n == 0) {
			handle_request(cn);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return;
		goto drop;
	}
drop:
	close_fd(&cn->fd);
	free(cn->buf);
	cn->buf = NULL;
	cn->len = cn->cap = 0;
}

/* ---- children ------------------------------------------------------------ */

/* use_console switches a terminal container's output from the launcher's
 * pipes (drained and closed: the launcher is gone) to the pty master the
 * runtime sent on the console socket. */
static int use_console(struct ctr *c)
{
	int m = console_receive(c->console), s;
	if (m < 0)
		return -1;
	for (s = 0; s < 2; s++) {
		char buf[4096];
		ssize_t r;
		while (c->fds[s] >= 0 && (r = read(c->fds[s], buf, sizeof(buf))) > 0)
			log_data(c, s, buf, r, 0);
		log_data(c, s, NULL, 0, 1);
		close_fd(&c->fds[s]);
	}
	c->master = m;
	c->fds[0] = fcntl(m, F_DUPFD_CLOEXEC, 0);
	if (c->fds[0] < 0) {
		close_fd(&c->master);
		return -1;
	}
	fcntl(c->fds[0], F_SETFL, O_NONBLOCK);
	return 0;
}

static void launched(struct ctr *c, int status)
{
	char msg[128], buf[32];
	int fd, n, i;
	long pid;

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		c->state = FAILED;
		snprintf(msg, sizeof(msg), "ERR %d %d launcher failed\n",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		goto out;
	}
	fd = open(c->pidpath, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	pid = n > 0 ? (buf[n] = 0, strtol(buf, NULL, 10)) : 0;
	if (pid <= 0) {
		c->state = FAILED;
		snprintf(msg, sizeof(msg),
			 "ERR 0 0 launcher left no pid in its pid file\n");
		goto out;
	}
	c->pid = pid;
	if (c->terminal && use_console(c) < 0) {
		c->state = FAILED;
		snprintf(msg, sizeof(msg),
			 "ERR 0 0 the runtime sent no terminal on the console socket\n");
		goto out;
	}
	c->state = RUNNING;
	snprintf(msg, sizeof(msg), "OK %ld\n", pid);
	/* The process may have died and been reaped before we knew its pid. */
	for (i = 0; i < RING; i++) {
		if (ring[i].pid == pid && now_ms() - ring[i].at < 60000) {
			struct timespec at;
			clock_gettime(CLOCK_REALTIME, &at);
			ring[i].pid = 0;
			set_exited(c, ring[i].status, &at);
			goto out;
		}
	}
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		/* Reaped by someone else: status unknown. */
		struct timespec at;
		clock_gettime(CLOCK_REALTIME, &at);
		set_exited(c, 255 << 8, &at);
	}
out:
	if (c->console >= 0) {
		close_fd(&c->console);
		console_unlink(c->id);
	}
	if (c->state == FAILED)
		close_fd(&c->stdin_w);
	if (c->conn >= 0) {
		reply(c->conn, msg);
		close_fd(&c->conn);
	}
}

static void reap(void)
{
	int status;
	pid_t pid;
	struct timespec at;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct ctr *c;
		clock_gettime(CLOCK_REALTIME, &at);
		if (pid == pidns_child) {
			logf_("pause: pid namespace reaper %d exited (status %d)",
			      (int)pid, status);
			pidns_child = 0;
			continue;
		}
		for (c = ctrs; c; c = c->next) {
			if (c->state == LAUNCHING && c->launcher == pid) {
				launched(c, status);
				break;
			}
			if (c->state == RUNNING && c->pid == pid) {
				set_exited(c, status, &at);
				break;
			}
		}
		if (!c) {
			ring[ring_next].pid = pid;
			ring[ring_next].status = status;
			ring[ring_next].at = now_ms();
			ring_next = (ring_next + 1) % RING;
		}
	}
}

/* ---- setup --------------------------------------------------------------- */

static void pidns_reaper_sig(int sig)
{
	if (sig == SIGCHLD) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		return;
	}
	_exit(0);
}

/* reaper_loop only reaps children until SIGTERM or SIGINT; name is the
 * process's comm. */
static void reaper_loop(const char *name)
{
	struct sigaction sa;
	sigset_t none;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pidns_reaper_sig;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_NAME, name);
	for (;;)
		pause();
}

/* pidns_reaper is PID 1 of the pod's PID namespace: it only reaps. */
static void pidns_reaper(void)
{
	reaper_loop("pause-pid1");
}

static pid_t fork_pidns_reaper(void)
{
	int self = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	pid_t pid;
	if (self < 0)
		die("open /proc/self/ns/pid");
	if (unshare(CLONE_NEWPID) < 0)
		die("unshare pid namespace");
	pid = fork();
	if (pid < 0)
		die("fork pid namespace reaper");
	if (pid == 0) {
		close(self);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(0);
		pidns_reaper();
	}
	/* Later children (launchers) stay in our own PID namespace. */
	if (setns(self, CLONE_NEWPID) < 0)
		die("setns back to own pid namespace");
	close(self);
	return pid;
}

static void usage(void)
{
	logf_("usage: pause --exec-shim STATUSFILE PIDFILE ARGV...");
	logf_("usage: pause --hold");
	logf_("usage: pause --dir DIR [--netns PATH] [--ipcns PATH] "
	      "[--utsns PATH] [--host-ipc] [--host-uts] [--hostname NAME] "
	      "[--share-pid] [--log FILE] [--ready-fd N]");
	_exit(2);
}

/* hold is the --hold mode: the process peapod starts in a pod's new user
 * namespace (with new network, IPC and UTS namespaces, and with
 * shareProcessNamespace a new PID namespace, all owned by that user
 * namespace), so that those namespaces belong to the pod's user namespace
 * and its root may use them. It holds them and, when it is PID 1 of the
 * pod's PID namespace, reaps; SIGTERM or SIGINT end it. */
static int hold(void)
{
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (syscall(SYS_close_range, 3, ~0U, 0) < 0) {
		for (fd = 3; fd < 1024; fd++)
			close(fd);
	}
	if (chdir("/") < 0) {
		/* nothing to do: the holder touches no files */
	}
	reaper_loop("pause-holder");
	return 0;
}

/* join_ns enters the namespace at path, of type nstype. */
static void join_ns(const char *path, int nstype, const char *what)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(what);
	if (setns(fd, nstype) < 0)
		die(what);
	close(fd);
}

/* exec_shim is the --exec-shim mode: a subreaper around a detached
 * `runtime exec -d --pid-file PIDFILE ...`, so the caller learns the exec'd
 * process's exit code. It writes "runtime <code>" (the runtime failed) or
 * "exit <code>" (the process ended; 128+signal for a signal) to STATUSFILE.
 *   pause --exec-shim STATUSFILE PIDFILE ARGV... */
static int exec_shim(int argc, char **argv)
{
	int status, fd, n, code;
	pid_t launcher, pid, p;
	char buf[64];

	if (argc < 5)
		usage();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die("set child subreaper");
	launcher = fork();
	if (launcher < 0)
		die("fork");
	if (launcher == 0) {
		execvp(argv[4], argv + 4);
		_exit(127);
	}
	while ((p = waitpid(launcher, &status, 0)) < 0 && errno == EINTR)
		;
	if (p < 0)
		die("wait");
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	pid = 0;
	if (code == 0) {
		fd = open(argv[3], O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		pid = n > 0 ? (buf[n] = 0, atoi(buf)) : 0;
	}
	if (pid <= 0) {
		n = snprintf(buf, sizeof(buf), "runtime %d\n", code ? code : -1);
		goto out;
	}
	/* The exec'd process was reparented to us; reap until it is gone. */
	code = 255;
	for (;;) {
		p = waitpid(-1, &status, 0);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			break;
		if (p == pid) {
			code = WIFEXITED(status) ? WEXITSTATUS(status)
						 : 128 + WTERMSIG(status);
			break;
		}
	}
	n = snprintf(buf, sizeof(buf), "exit %d\n", code);
out:
	fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, buf, n) != n)
		die("write status");
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *netns = NULL, *hostname = NULL, *logpath = NULL;
	const char *ipcns = NULL, *utsns = NULL;
	int share_pid = 0, host_ipc = 0, host_uts = 0, ready = -1, i, fd, lfd,
	    sfd, unshare_flags = 0;
	struct sockaddr_un sa;
	sigset_t mask;
	char line[64];

	if (argc > 1 && !strcmp(argv[1], "--exec-shim"))
		return exec_shim(argc, argv);
	if (argc == 2 && !strcmp(argv[1], "--hold"))
		return hold();
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--share-pid"))
			share_pid = 1;
		else if (!strcmp(argv[i], "--host-ipc"))
			host_ipc = 1;
		else if (!strcmp(argv[i], "--host-uts"))
			host_uts = 1;
		else if (i + 1 >= argc)
			usage();
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[++i];
		else if (!strcmp(argv[i], "--netns"))
			netns = argv[++i];
		else if (!strcmp(argv[i], "--ipcns"))
			ipcns = argv[++i];
		else if (!strcmp(argv[i], "--utsns"))
			utsns = argv[++i];
		else if (!strcmp(argv[i], "--hostname"))
			hostname = argv[++i];
		else if (!strcmp(argv[i], "--log"))
			logpath = argv[++i];
		else if (!strcmp(argv[i], "--ready-fd"))
			ready = atoi(argv[++i]);
		else
			usage();
	}
	if (!dir || (ipcns && host_ipc) || (utsns && host_uts))
		usage();

	/* stdio first, so diagnostics land in the log. */
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		die("open /dev/null");
	dup2(fd, 0);
	if (logpath) {
		int lf = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			      0640);
		if (lf >= 0) {
			dup2(lf, 1);
			dup2(lf, 2);
			close(lf);
		} else {
			dup2(fd, 1);
			dup2(fd, 2);
		}
	} else {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	if (fd > 2)
		close(fd);
	/* Close every inherited fd but the ready one. */
	if (ready >= 0 && ready != 3) {
		if (dup2(ready, 3) < 0)
			die("dup ready fd");
		ready = 3;
	}
	if (syscall(SYS_close_range, ready >= 0 ? 4 : 3, ~0U, 0) < 0) {
		for (i = ready >= 0 ? 4 : 3; i < 1024; i++)
			close(i);
	}
	if (ready >= 0)
		fcntl(ready, F_SETFD, FD_CLOEXEC);

	if (netns)
		join_ns(netns, CLONE_NEWNET, "join netns");
	if (ipcns)
		join_ns(ipcns, CLONE_NEWIPC, "join ipc namespace");
	else if (!host_ipc)
		unshare_flags |= CLONE_NEWIPC;
	if (utsns)
		join_ns(utsns, CLONE_NEWUTS, "join uts namespace");
	else if (!host_uts)
		unshare_flags |= CLONE_NEWUTS;
	if (unshare_flags && unshare(unshare_flags) < 0)
		die("unshare ipc/uts");
	/* Never the host's hostname: only a pod's own UTS namespace gets one. */
	if (hostname && !host_uts &&
	    sethostname(hostname, strlen(hostname)) < 0)
		die("sethostname");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die("set child subreaper");
	prctl(PR_SET_NAME, "pause");
	signal(SIGPIPE, SIG_IGN);
	setsid(); /* fails harmlessly if already a session leader */
	if (chdir(dir) < 0)
		die("chdir");

	/* Wait for the go-ahead (peapod placed us in the pod cgroup). */
	if (ready >= 0) {
		char b;
		ssize_t n;
		do
			n = read(ready, &b, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			die("read go-ahead");
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");

	if (share_pid)
		pidns_child = fork_pidns_reaper();

	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, SOCK_NAME); /* relative: long dirs work */
	unlink(SOCK_NAME);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind " SOCK_NAME);
	if (listen(lfd, 64) < 0)
		die("listen");

	if (ready >= 0) {
		int n = snprintf(line, sizeof(line), "READY %d %d\n",
				 (int)getpid(), (int)pidns_child);
		if (write(ready, line, n) != n)
			logf_("pause: write ready: %s", strerror(errno));
		close(ready);
	}
	for (i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;

	for (;;) {
		struct pollfd *pfd;
		struct ctr *c;
		int n = 2, k, timeout = -1, cnt = 0;
		int64_t now = now_ms();

		for (c = ctrs; c; c = c->next) {
			cnt += 2 + 2 * MAX_SUBS;
			if (c->state == EXITED && !c->exit_written) {
				int64_t left = c->deadline - now;
				if (left < 0)
					left = 0;
				if (timeout < 0 || left < timeout)
					timeout = left;
			}
		}
		pfd = calloc(2 + MAX_CONNS + cnt, sizeof(*pfd));
		if (!pfd)
			die("calloc pollfd");
		pfd[0].fd = sfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = lfd;
		pfd[1].events = POLLIN;
		for (i = 0; i < MAX_CONNS; i++) {
			pfd[n].fd = conns[i].fd;
			pfd[n++].events = POLLIN;
		}
		for (c = ctrs; c; c = c->next) {
			int s;
			pfd[n].fd = c->fds[0];
			pfd[n++].events = POLLIN;
			pfd[n].fd = c->fds[1];
			pfd[n++].events = POLLIN;
			/* Subscribers never write (they shut down their write
			 * side): only a hangup (they closed) is of interest. */
			for (s = 0; s < 2; s++)
				for (i = 0; i < MAX_SUBS; i++) {
					pfd[n].fd = c->subs[s][i];
					pfd[n++].events = 0;
				}
		}
		k = poll(pfd, n, timeout);
		if (k < 0 && errno != EINTR)
			die("poll");
		if (k > 0 && pfd[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					continue;
				if (pidns_child > 0)
					kill(pidns_child, SIGKILL);
				unlink(SOCK_NAME);
				_exit(0);
			}
			reap();
		}
		/* Pipes before connections: a launch reply never races logs. */
		n = 2 + MAX_CONNS;
		for (c = ctrs; k > 0 && c; c = c->next, n += 2 + 2 * MAX_SUBS) {
			int s;
			for (s = 0; s < 2; s++)
				for (i = 0; i < MAX_SUBS; i++) {
					struct pollfd *q = &pfd[n + 2 + s * MAX_SUBS + i];
					if (q->fd >= 0 && q->fd == c->subs[s][i] &&
					    (q->revents & (POLLHUP | POLLERR)))
						close_fd(&c->subs[s][i]);
				}
			for (s = 0; s < 2; s++) {
				char buf[4096];
				ssize_t r;
				if (pfd[n + s].fd < 0 || !pfd[n + s].revents)
					continue;
				if (c->fds[s] != pfd[n + s].fd)
					continue; /* replaced meanwhile */
				log_open(c);
				r = read(c->fds[s], buf, sizeof(buf));
				if (r > 0) {
					fan_out(c, s, buf, r);
					log_data(c, s, buf, r, 0);
				} else if (r == 0 ||
					   (errno != EAGAIN && errno != EINTR)) {
					log_data(c, s, NULL, 0, 1);
					close_fd(&c->fds[s]);
					drop_subs(c, s);
				}
			}
		}
		now = now_ms();
		for (c = ctrs; c; c = c->next)
			maybe_finish(c, now);
		for (i = 0; k > 0 && i < MAX_CONNS; i++) {
			if (conns[i].fd >= 0 && pfd[2 + i].revents)
				conn_read(&conns[i]);
		}
		if (k > 0 && pfd[1].revents) {
			for (;;) {
				int cfd = accept4(lfd, NULL, NULL,
						  SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (cfd < 0)
					break;
				for (i = 0; i < MAX_CONNS && conns[i].fd >= 0; i++)
					;
				if (i == MAX_CONNS) {
					reply(cfd, "ERR -1 0 busy\n");
					close(cfd);
					continue;
				}
				conns[i].fd = cfd;
				conn_read(&conns[i]);
			}
		}
		free(pfd);
	}
}
