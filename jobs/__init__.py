"""RQ jobs: job functions, the periodic table (`rq cron jobs.cron`), the worker class."""
