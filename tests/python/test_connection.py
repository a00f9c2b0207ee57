"""The CLI connects as psql does (libpq's rules: a service file wins over PG* variables),
hands that server to dbt, refuses a dbt target elsewhere, and never starts a server."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import ORIGINAL_COMMAND, Database, failure_text

ERROR = "backfill_numeric_embeddings: error:"


def test_with_a_service_file_the_vectors_land_where_psql_points(
        scratch_db: Database, demo_db: Database, tmp_path: Path) -> None:
    # The service names scratch_db; PGDATABASE (which the service overrides) names demo_db.
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text(f"[prod]\nhost={scratch_db.env['PGHOST']}\n"
                            f"port={scratch_db.env['PGPORT']}\nuser={scratch_db.env['PGUSER']}\n"
                            f"dbname={scratch_db.name}\n")
    env = {name: value for name, value in scratch_db.env.items()
           if name not in ("PGHOST", "PGPORT", "PGUSER")}
    env |= {"PGSERVICE": "prod", "PGSERVICEFILE": str(service_file),
            "PGDATABASE": demo_db.name}
    as_psql_connects = subprocess.run(
        ["psql", "-X", "-At", "-c", "select current_database()"], env=env,
        capture_output=True, text=True, check=True).stdout.strip()
    assert as_psql_connects == scratch_db.name
    before = demo_db.value("select count(*) from numeric_window_embeddings")
    result = Database(env).backfill("--as-of", "2025-01-31", "--market-id", "US_EQ",
                                    "--limit", "5", "--model-id", "num-stab-core-v1")
    assert result.returncode == 0, result.stderr
    run_id = result.summary()["run_id"]
    assert scratch_db.value("select count(*) from numeric_window_embeddings"
                            " where window_spec ->> 'run_id' = %s", (run_id,)) == 5
    assert demo_db.value("select count(*) from numeric_window_embeddings") == before


def test_a_dbt_target_on_another_database_is_refused(scratch_db: Database, demo_db: Database,
                                                     tmp_path: Path) -> None:
    # A user's own profiles.yml, with the database written into it.
    profile = (Path(scratch_db.env["DBT_PROFILES_DIR"]) / "profiles.yml").read_text()
    (tmp_path / "profiles.yml").write_text(profile.replace(
        "{{ env_var('PGDATABASE', 'prometheus') }}", demo_db.name))
    env = scratch_db.env | {"DBT_PROFILES_DIR": str(tmp_path)}
    before = demo_db.value("select count(*) from analytics.numeric_windows")
    result = Database(env).backfill(*ORIGINAL_COMMAND)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{ERROR} dbt's target is database {demo_db.name}, not"), last
    assert f"database {scratch_db.name}" in last
    assert "Traceback" not in result.stderr
    assert demo_db.value("select count(*) from analytics.numeric_windows") == before


def test_a_dbt_target_on_another_server_is_refused_before_dbt_writes(
        demo_db: Database) -> None:
    """Same database name, another server: dbt's first hook compares the server's identity
    (start time, port, database) with the CLI's and stops the run before any model."""
    with demo_db.dbt_runner() as dbt:
        elsewhere = f"2001-01-01 00:00:00+00 port 1 database {demo_db.name}"
        result = dbt.invoke(["run", "--select", "numeric_windows"],
                            {"as_of": "2025-01-31", "market_id": "US_EQ", "limit": 3,
                             "run_id": "elsewhere", "cli_server": elsewhere}, check=False)
    assert not result.success
    assert "is not the server the command connects to" in failure_text(result)
    assert demo_db.value("select count(*) from analytics.numeric_windows"
                         " where run_id = 'elsewhere'") == 0


def test_no_server_reachable_says_how_to_start_the_private_one(demo_db: Database,
                                                               tmp_path: Path) -> None:
    env = demo_db.env | {"PGHOST": str(tmp_path), "PGPORT": "5"}  # no socket there
    result = Database(env).backfill(*ORIGINAL_COMMAND)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"{ERROR} no PostgreSQL server reachable")
    assert 'eval "$(make -s env)"' in result.stderr
    assert not list(tmp_path.iterdir())  # nothing was started there


def test_a_database_that_does_not_exist_is_named_not_taken_for_a_missing_server(
        demo_db: Database) -> None:
    env = demo_db.env | {"PGDATABASE": "no_such_database"}  # the server is up
    result = Database(env).backfill(*ORIGINAL_COMMAND)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"{ERROR} the PostgreSQL server refused the connection")
    assert 'database "no_such_database" does not exist' in result.stderr
    assert "make -s env" not in result.stderr  # starting a server would not help
