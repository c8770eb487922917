"""Start `rq worker --burst` runs without paying Python start-up and imports each time.

Run as `python -m tests.rq_launcher` with the worker's settings in the environment. It imports
the app, its jobs and RQ and builds the app once; then for each JSON line on stdin,
{"args": [...], "env": {...}, "log": "path"}, it forks a child that runs the `rq` command line
with those arguments and that environment, its output going to `log`, and answers with the
child's exit code. Each run is a fresh, real `rq worker` process (a fork of this warm one, as RQ
forks a work horse per job), so jobs run only when a test asks — never in between.
"""
import json
import os
import sys
import traceback

from rq.cli import main as rq

import jobs.alerts  # noqa: F401  the job modules a work horse imports
import jobs.media  # noqa: F401
import jobs.notify  # noqa: F401
import jobs.worker  # noqa: F401
from app import create_app


def run(args, env, log):
    """Run `rq *args` in a forked child; its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.environ.clear()
            os.environ.update(env)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            rq(args=args, prog_name="rq")
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    create_app()  # warms blueprints and schemas; opens no connection, so nothing leaks into the forks
    for line in sys.stdin:
        request = json.loads(line)
        print(run(request["args"], request["env"], request["log"]), flush=True)
