/*
 * odls_migr_module.c -- the module of odls migr (see odls_migr.h): launch
 * each local rank as `DEPUTY run --job J --rank R [--no-migrate] -- APP
 * ARGS` with MIGR_ODLS=1 in its environment (DICOM_ODLS_ENV: the dicom
 * BTL takes the jobs launched so), and send the orted's signals to the
 * deputy, which forwards them to the rank wherever it runs.
 *
 * Everything but the fork is the ODLS base's (child list, IOF pipes, PMIx
 * environment, wait callbacks).  The fork follows the contract of the base
 * (orte_odls_base_spawn_proc calls fork_local with the command, argv,
 * environment and IOF pipes ready): the child joins its own process group,
 * takes the IOF pipes as stdio, gets its binding, and execs the deputy; a
 * close-on-exec pipe tells the parent whether that exec happened, or why
 * not (orte_odls_pipe_err_msg_t records, as the base prints them).
 */
#include "orte_config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "opal/util/argv.h"
#include "opal/util/error.h"
#include "opal/util/fd.h"
#include "opal/util/opal_environ.h"
#include "opal/util/output.h"
#include "orte/constants.h"
#include "orte/mca/errmgr/errmgr.h"
#include "orte/mca/iof/base/iof_base_setup.h"
#include "orte/mca/odls/base/odls_private.h"
#include "orte/mca/rtc/rtc.h"
#include "orte/runtime/orte_globals.h"
#include "orte/util/name_fns.h"
#include "orte/util/show_help.h"

#include "common/ctlmsg.h"
#include <migr/dicom.h>

#include "odls_migr.h"

#define HELP_FILE "help-odls-migr.txt"

/* ------------------------------------------------------------ the child */

/* Tell the parent why the deputy cannot start, and end. */
static void child_fail(int fd, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

static void child_fail(int fd, const char *topic, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    orte_odls_pipe_err_msg_t rec = {.fatal = true,
                                    .file_str_len = (int)strlen(HELP_FILE),
                                    .topic_str_len = (int)strlen(topic),
                                    .msg_str_len = (int)strlen(msg)};
    if (OPAL_SUCCESS == opal_fd_write(fd, sizeof rec, &rec) &&
        OPAL_SUCCESS == opal_fd_write(fd, rec.file_str_len, HELP_FILE) &&
        OPAL_SUCCESS == opal_fd_write(fd, rec.topic_str_len, topic)) {
        (void)opal_fd_write(fd, rec.msg_str_len, msg);
    }
    _exit(1);
}

/* argv of the deputy: DEPUTY run --job J --rank R [--no-migrate] -- CMD ARGV[1..] */
static char **deputy_argv(orte_odls_spawn_caddy_t *cd)
{
    char **argv = NULL, num[16];
    opal_argv_append_nosize(&argv, mca_odls_migr_component.deputy);
    opal_argv_append_nosize(&argv, "run");
    snprintf(num, sizeof num, "%u", (unsigned)cd->child->name.jobid);
    opal_argv_append_nosize(&argv, "--job");
    opal_argv_append_nosize(&argv, num);
    snprintf(num, sizeof num, "%u", (unsigned)cd->child->name.vpid);
    opal_argv_append_nosize(&argv, "--rank");
    opal_argv_append_nosize(&argv, num);
    if (!mca_odls_migr_component.migratable) {
        opal_argv_append_nosize(&argv, "--no-migrate");
    }
    opal_argv_append_nosize(&argv, "--");
    opal_argv_append_nosize(&argv, cd->cmd);
    for (int i = 1; NULL != cd->argv && NULL != cd->argv[i]; i++) {
        opal_argv_append_nosize(&argv, cd->argv[i]);
    }
    return argv;
}

static void child_exec(orte_odls_spawn_caddy_t *cd, int errfd)
{
    int rc;
    sigset_t all;

    /* signals to the group reach whatever the rank forks at home */
    setpgid(0, 0);
    if (ORTE_FLAG_TEST(cd->jdata, ORTE_JOB_FLAG_FORWARD_OUTPUT)) {
        if (ORTE_SUCCESS != (rc = orte_iof_base_setup_child(&cd->opts, &cd->env))) {
            child_fail(errfd, "iof", "odls migr on %s: cannot connect the stdio of rank %u (%s)",
                       orte_process_info.nodename, (unsigned)cd->child->name.vpid, ORTE_ERROR_NAME(rc));
        }
    } else { /* no output wanted: stdio from and to /dev/null */
        int null = open("/dev/null", O_RDWR);
        for (int i = 0; null >= 0 && i < 3; i++) {
            if (i != null && i != errfd) {
                dup2(null, i);
            }
        }
        if (null > 2 && null != errfd) {
            close(null);
        }
    }
    /* the rank was launched by odls migr: its dicom BTL takes the job */
    if (OPAL_SUCCESS != (rc = opal_setenv(DICOM_ODLS_ENV, "1", true, &cd->env))) {
        child_fail(errfd, "env", "odls migr on %s: cannot set %s=1 for rank %u (%s)",
                   orte_process_info.nodename, DICOM_ODLS_ENV, (unsigned)cd->child->name.vpid,
                   opal_strerror(rc));
    }
    /* binding: the deputy's is inherited by the rank */
    orte_rtc.set(cd->jdata, cd->child, &cd->env, errfd);

    char **argv = deputy_argv(cd);
    if (errfd > 3) {
        (void)close_range(3, (unsigned)errfd - 1, 0);
    }
    (void)close_range((unsigned)errfd + 1, ~0U, 0);

    /* the event library's handlers and mask must not reach the rank */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, NULL);

    if (NULL != cd->wdir && 0 != chdir(cd->wdir)) {
        child_fail(errfd, "wdir", "odls migr on %s: cannot enter the working directory %s of rank %u: %s",
                   orte_process_info.nodename, cd->wdir, (unsigned)cd->child->name.vpid, strerror(errno));
    }
    execve(argv[0], argv, cd->env);
    child_fail(errfd, "exec", "odls migr on %s: cannot start the deputy %s for rank %u: %s "
               "(set odls_migr_deputy to the path of migrctl)",
               orte_process_info.nodename, argv[0], (unsigned)cd->child->name.vpid, strerror(errno));
}

/* ----------------------------------------------------------- the parent */

/* Read the child's records until EOF (it exec'd) or a fatal one. */
static int parent_wait(orte_odls_spawn_caddy_t *cd, int errfd)
{
    orte_odls_pipe_err_msg_t rec;
    char file[ORTE_ODLS_MAX_FILE_LEN + 1], topic[ORTE_ODLS_MAX_TOPIC_LEN + 1];

    for (;;) {
        int rc = opal_fd_read(errfd, sizeof rec, &rec);
        if (OPAL_ERR_TIMEOUT == rc) { /* EOF: the deputy runs */
            return ORTE_SUCCESS;
        }
        if (OPAL_SUCCESS != rc || rec.file_str_len < 0 || rec.file_str_len > ORTE_ODLS_MAX_FILE_LEN ||
            rec.topic_str_len < 0 || rec.topic_str_len > ORTE_ODLS_MAX_TOPIC_LEN ||
            rec.msg_str_len < 0 || rec.msg_str_len > 65536) {
            opal_output(0, "odls migr on %s: reading the start-up report of rank %u failed",
                        orte_process_info.nodename, (unsigned)cd->child->name.vpid);
            return ORTE_ERR_PIPE_READ_FAILURE;
        }
        char *msg = calloc(1, (size_t)rec.msg_str_len + 1);
        if (NULL == msg ||
            (rec.file_str_len && OPAL_SUCCESS != opal_fd_read(errfd, rec.file_str_len, file)) ||
            (rec.topic_str_len && OPAL_SUCCESS != opal_fd_read(errfd, rec.topic_str_len, topic)) ||
            (rec.msg_str_len && OPAL_SUCCESS != opal_fd_read(errfd, rec.msg_str_len, msg))) {
            free(msg);
            return ORTE_ERR_PIPE_READ_FAILURE;
        }
        file[rec.file_str_len] = '\0';
        topic[rec.topic_str_len] = '\0';
        if (rec.msg_str_len > 0) {
            orte_show_help_norender(file, topic, false, msg);
        }
        free(msg);
        if (rec.fatal) {
            return ORTE_ERR_SILENT; /* reported just now */
        }
    }
}

/* migrd's control socket as the deputy will see it. */
static const char *migrd_socket(char **env)
{
    const char *s = NULL;
    for (int i = 0; NULL != env && NULL != env[i]; i++) {
        if (0 == strncmp(env[i], "MIGR_SOCKET=", 12)) {
            s = env[i] + 12;
        }
    }
    return NULL != s && '\0' != *s ? s : DICOM_DEFAULT_SOCKET;
}

/* Is a migrd answering?  Once per node and job, else the user sees one
 * refusal per rank.  ORTE_SUCCESS, or ORTE_ERR_SILENT (said why). */
static int check_migrd(orte_odls_spawn_caddy_t *cd)
{
    static orte_jobid_t refused = ORTE_JOBID_INVALID;
    const char *path = migrd_socket(cd->env);
    int fd = ctl_connect(path);

    if (fd >= 0) {
        close(fd);
        return ORTE_SUCCESS;
    }
    if (refused != cd->child->name.jobid) {
        char msg[512];
        refused = cd->child->name.jobid;
        snprintf(msg, sizeof msg, "odls migr on %s: no migrd answers on %s (%s): start migrd as root "
                 "on %s (migrd --config /etc/migr/cluster.conf), or run without --mca odls migr\n",
                 orte_process_info.nodename, path, strerror(-fd), orte_process_info.nodename);
        orte_show_help_norender(HELP_FILE, "no-migrd", false, msg);
    }
    return ORTE_ERR_SILENT;
}

static int odls_migr_fork_local(void *arg)
{
    orte_odls_spawn_caddy_t *cd = arg;
    orte_proc_t *child = cd->child;
    int p[2], rc;

    if (NULL == child) { /* the base gives us ranks only */
        return ORTE_ERR_NOT_SUPPORTED;
    }
    if (ORTE_SUCCESS != (rc = check_migrd(cd))) {
        child->state = ORTE_PROC_STATE_FAILED_TO_START;
        return rc;
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        child->state = ORTE_PROC_STATE_FAILED_TO_START;
        return ORTE_ERR_SYS_LIMITS_PIPES;
    }
    opal_output_verbose(10, mca_odls_migr_component.output,
                        "%s odls:migr: launching %s as rank %s through %s",
                        ORTE_NAME_PRINT(ORTE_PROC_MY_NAME), cd->cmd, ORTE_NAME_PRINT(&child->name),
                        mca_odls_migr_component.deputy);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        child->state = ORTE_PROC_STATE_FAILED_TO_START;
        return ORTE_ERR_SYS_LIMITS_CHILDREN;
    }
    if (0 == pid) {
        close(p[0]);
        child_exec(cd, p[1]); /* does not return */
    }
    child->pid = pid;
    close(p[1]);
    /* the child's ends of the IOF pipes */
    if (cd->opts.connect_stdin) {
        close(cd->opts.p_stdin[0]);
    }
    close(cd->opts.p_stdout[1]);
    if (!orte_iof_base.redirect_app_stderr_to_stdout) {
        close(cd->opts.p_stderr[1]);
    }
    rc = parent_wait(cd, p[0]);
    close(p[0]);
    if (ORTE_SUCCESS != rc) {
        child->state = ORTE_PROC_STATE_FAILED_TO_START;
        ORTE_FLAG_UNSET(child, ORTE_PROC_FLAG_ALIVE);
        return rc;
    }
    child->state = ORTE_PROC_STATE_RUNNING;
    ORTE_FLAG_SET(child, ORTE_PROC_FLAG_ALIVE);
    opal_output_verbose(10, mca_odls_migr_component.output, "%s odls:migr: rank %s: deputy pid %d",
                        ORTE_NAME_PRINT(ORTE_PROC_MY_NAME), ORTE_NAME_PRINT(&child->name), (int)pid);
    return ORTE_SUCCESS;
}

/* ------------------------------------------------------------- signals */

/* To the deputy, which forwards every signal it can catch to the rank
 * wherever it runs (and if it is killed, migrd kills the rank).  SIGKILL
 * and SIGSTOP, which it cannot catch, also go to its process group at
 * home: the rank, while it runs at home, and what it forked there. */
static int odls_migr_signal(pid_t pid, int sig)
{
    opal_output_verbose(10, mca_odls_migr_component.output, "%s odls:migr: signal %d to deputy pid %d",
                        ORTE_NAME_PRINT(ORTE_PROC_MY_NAME), sig, (int)pid);
    if (0 != kill(pid, sig) && ESRCH != errno) {
        return ORTE_ERROR;
    }
    if (SIGKILL == sig || SIGSTOP == sig) {
        (void)kill(-pid, sig);
    }
    return ORTE_SUCCESS;
}

static int odls_migr_launch_local_procs(opal_buffer_t *data)
{
    orte_jobid_t job;
    int rc = orte_odls_base_default_construct_child_list(data, &job);
    if (ORTE_SUCCESS != rc) {
        ORTE_ERROR_LOG(rc);
        return rc;
    }
    ORTE_ACTIVATE_LOCAL_LAUNCH(job, odls_migr_fork_local);
    return ORTE_SUCCESS;
}

static int odls_migr_kill_local_procs(opal_pointer_array_t *procs)
{
    return orte_odls_base_default_kill_local_procs(procs, odls_migr_signal);
}

static int odls_migr_signal_local_procs(const orte_process_name_t *proc, int32_t sig)
{
    return orte_odls_base_default_signal_local_procs(proc, sig, odls_migr_signal);
}

static int odls_migr_restart_proc(orte_proc_t *child)
{
    return orte_odls_base_default_restart_proc(child, odls_migr_fork_local);
}

orte_odls_base_module_t orte_odls_migr_module = {
    .get_add_procs_data = orte_odls_base_default_get_add_procs_data,
    .launch_local_procs = odls_migr_launch_local_procs,
    .kill_local_procs = odls_migr_kill_local_procs,
    .signal_local_procs = odls_migr_signal_local_procs,
    .restart_proc = odls_migr_restart_proc,
};
