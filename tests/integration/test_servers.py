"""The local servers the scale-out backends are tested against really start, answer and stop."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from lookalike.servers import MilvusServer, PostgresServer, ServerError, free_port


def test_postgres_server_answers_sql(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_servers (x INTEGER)")
        conn.execute("INSERT INTO t_servers VALUES (41)")
        row = conn.execute("SELECT max(x) + 1 FROM t_servers").fetchone()
    assert row is not None and row[0] == 42


def test_a_second_postgres_starts_on_its_own_port_and_stops(
    postgres_server: PostgresServer,
) -> None:
    other = PostgresServer().start()
    try:
        assert other.port != postgres_server.port
        with psycopg.connect(other.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        other.stop()
    assert not other.folder.exists()  # its own temporary folder is removed
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(other.url, connect_timeout=2)


def test_milvus_server_stores_and_finds_a_vector(milvus_server: MilvusServer) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=f"http://127.0.0.1:{milvus_server.port}")
    try:
        if client.has_collection("t_servers"):
            client.drop_collection("t_servers")
        client.create_collection(
            "t_servers", dimension=4, metric_type="IP", auto_id=False,
            consistency_level="Strong",
        )
        vectors = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]
        client.insert("t_servers", [{"id": i, "vector": v} for i, v in enumerate(vectors)])
        hits = client.search("t_servers", data=[[0, 0.9, 0.1, 0]], limit=1)
        assert hits[0][0]["id"] == 1
        client.drop_collection("t_servers")
    finally:
        client.close()


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))  # raises if something listens there


def test_missing_postgres_is_a_clear_error(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "pg")
    server.bin = None
    with pytest.raises(ServerError, match="PostgreSQL is not installed"):
        server.start()
