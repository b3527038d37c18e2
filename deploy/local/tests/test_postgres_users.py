"""The embedded Postgres starts for root (running the server as an unprivileged system user, since Postgres refuses
root) and for a normal user (running it as that user)."""

import os

from cx_local.ports import free_port
from cx_local.postgres import RUN_AS_ROOT_USER, EmbeddedPostgres


def test_starts_for_root_or_current_user(tmp_path):
    pg = EmbeddedPostgres(tmp_path / "data", port=free_port(), durable=False)
    info = pg.start()
    try:
        owner = (tmp_path / "data").stat().st_uid
        if os.geteuid() == 0:
            import pwd

            assert owner == pwd.getpwnam(RUN_AS_ROOT_USER).pw_uid
        else:
            assert owner == os.geteuid()
        assert info.admin_url.startswith("postgresql://cx_admin:")
    finally:
        pg.stop()
    assert pg.proc is None
