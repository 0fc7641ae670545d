"""The shared services a team runs, started as real processes on loopback ports in a temporary folder:
PostgreSQL (databases `mlflow` and `prefect`), an S3 server (moto), `mlflow server` on both, `prefect server start`
on PostgreSQL, a Dask scheduler with two workers. Every process is stopped by its pid (its group), newest first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.server.test_weekly_on_a_server import BIN, ROOT, Processes, _healthy, free_port, run, wait_until

BUCKET = "adapterops"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "lane", "AWS_SECRET_ACCESS_KEY": "lane", "AWS_DEFAULT_REGION": "us-east-1"}
ACCESS_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD) (/[^ ?"]*)[^"]* HTTP/[\d.]+" (\d{3})')


class LaneProcesses(Processes):
    """Stops the newest process first: clients and servers before the database they write to."""

    def stop_all(self) -> None:
        for name in reversed(list(self.started)):
            self.stop(name)

    def start_with(self, name: str, env: dict, *args: str) -> subprocess.Popen:
        """start, with an environment of its own (a server's credentials, a worker's workspace)."""
        saved, self.env = self.env, env
        try:
            return self.start(name, *args)
        finally:
            self.env = saved


def postgres_binaries() -> Path | None:
    """The folder holding initdb/pg_ctl/postgres: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def as_postgres_user(*args: str) -> list[str]:
    """PostgreSQL refuses to run as root: run it as `nobody` then (its folders are handed to that user)."""
    return ["runuser", "-u", "nobody", "--", *args] if os.geteuid() == 0 else list(args)


@dataclass
class Services:
    root: Path
    env: dict                       # what a client or worker on "another machine" is given: only URIs
    processes: LaneProcesses
    ports: dict = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.root

    def postgres_url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.ports['postgres']}/{database}"

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.ports['s3']}", **{
            "aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_KEYS["AWS_DEFAULT_REGION"]})

    def s3_keys(self) -> list[str]:
        keys, token = [], None
        while True:
            page = self.s3().list_objects_v2(Bucket=BUCKET, **({"ContinuationToken": token} if token else {}))
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def sql(self, database: str, query: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.ports['postgres']}/{database}") as connection:
            return connection.execute(query).fetchall()

    def start_mlflow(self) -> None:
        env = self.env | S3_KEYS | {"MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.ports['s3']}"}
        self.processes.start_with("mlflow", env, str(BIN / "mlflow"), "server", "--host", "127.0.0.1",
                                  "--port", str(self.ports["mlflow"]), "--workers", "1",
                                  "--backend-store-uri", self.postgres_url("mlflow"),
                                  "--artifacts-destination", f"s3://{BUCKET}/mlflow", "--serve-artifacts")
        wait_until(lambda: _answers(f"{self.env['MLFLOW_TRACKING_URI']}/health"), "the MLflow server", 180)

    def start_dask_worker(self, name: str) -> None:
        self.processes.start(name, str(BIN / "dask"), "worker", self.env["DASK_SCHEDULER"], "--nworkers", "1",
                             "--nthreads", "1", "--no-dashboard", "--name", name, "--local-directory",
                             str(self.root / name))

    def requests(self, name: str) -> Counter:
        """API requests a server has answered so far, by method and path (from its access log)."""
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        return Counter(f"{m.group(1)} {m.group(2)}" for m in ACCESS_LINE.finditer(text))


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def start_services(root: Path) -> Services:
    """Everything of the team set-up but the Prefect workers (the test starts those with their own homes)."""
    pg_bin = postgres_binaries()
    if pg_bin is None:
        raise RuntimeError("PostgreSQL is not installed (make test-services installs it with apt-get)")
    ports = {name: free_port() for name in ("postgres", "s3", "mlflow", "prefect", "dask")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "AWS_", "DASK_"))} | {
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT), "ADAPTEROPS_DIR": str(ROOT),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}",
        "PREFECT_API_URL": f"http://127.0.0.1:{ports['prefect']}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
        "DASK_SCHEDULER": f"tcp://127.0.0.1:{ports['dask']}"}
    processes = LaneProcesses(env, root)
    services = Services(root, env, processes, ports)
    try:
        data = root / "pgdata"
        data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(root, "nobody")
            shutil.chown(data, "nobody")
        run(env, *as_postgres_user(str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                   "--no-sync", "-E", "UTF8"))
        processes.start("postgres", *as_postgres_user(str(pg_bin / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                                                       "-p", str(ports["postgres"]), "-k", str(root)))
        wait_until(lambda: _pg_ready(ports["postgres"]), "PostgreSQL", 60)
        for database in ("mlflow", "prefect"):
            _create_database(ports["postgres"], database)
        processes.start("s3", str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(ports["s3"]))
        wait_until(lambda: _answers(f"http://127.0.0.1:{ports['s3']}/moto-api/"), "the S3 server", 60)
        services.s3().create_bucket(Bucket=BUCKET)
        services.start_mlflow()
        prefect_env = env | {"PREFECT_HOME": str(root / "prefect-server"), "PREFECT_SERVER_API_HOST": "127.0.0.1",
                             "PREFECT_SERVER_API_PORT": str(ports["prefect"]),
                             "PREFECT_API_DATABASE_CONNECTION_URL": services.postgres_url("prefect", "asyncpg"),
                             "PREFECT_SERVER_LOGGING_LEVEL": "INFO"}   # its access log: the request counts
        processes.start_with("prefect", prefect_env, str(BIN / "prefect"), "server", "start")
        processes.start("dask-scheduler", str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                        str(ports["dask"]), "--no-dashboard")
        services.start_dask_worker("dask-worker-1")
        services.start_dask_worker("dask-worker-2")
        wait_until(lambda: _healthy(env["PREFECT_API_URL"]), "the Prefect server", 240)
        wait_until(lambda: _dask_workers(env["DASK_SCHEDULER"]) >= 2, "two Dask workers", 120)
    except BaseException:
        stop_services(services)
        raise
    return services


def stop_services(services: Services) -> None:
    services.processes.stop_all()


def _pg_ready(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _create_database(port: int, name: str) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as connection:
        connection.execute(f"create database {name}")


def _dask_workers(address: str) -> int:
    code = ("from distributed import Client; c = Client(%r, timeout=10); "
            "print(len(c.scheduler_info()['workers'])); c.close()" % address)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return int(done.stdout.strip() or 0) if done.returncode == 0 else 0
