"""The batch probe's RESP reader, alone: whole replies as redis-py decodes them, incomplete ones waited for, and
everything it must not read itself refused."""
from __future__ import annotations

import pytest
from redis.connection import Connection

from ansible_collections.codis.ha.plugins.module_utils._batch import ErrorReply, Unexpected, pack, resp_value
from ansible_collections.codis.ha.plugins.module_utils._probe import CONFIG_PATTERN, PROBE_REPLIES, PROBE_REQUEST


def read_all(buf: bytes) -> list[object]:
    out, at = [], 0
    while at < len(buf):
        got = resp_value(buf, at)
        assert got is not None, "incomplete at %d" % at
        out.append(got[0])
        at = got[1]
    return out


def test_the_probe_request_is_five_commands_as_redis_py_packs_them() -> None:
    packed = b"".join(Connection().pack_commands(
        [("INFO", "replication"), ("INFO", "persistence"), ("INFO", "keyspace"), ("ROLE",),
         ("CONFIG", "GET", CONFIG_PATTERN)]))
    assert PROBE_REQUEST == packed and PROBE_REPLIES == 5


def test_replies_are_decoded_as_redis_py_decodes_them() -> None:
    buf = (b"$11\r\nrole:master\r\n*3\r\n$6\r\nmaster\r\n:42\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"
           b"$2\r\n42\r\n+OK\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n")
    assert read_all(buf) == ["role:master", ["master", 42, [["127.0.0.1", "6380", "42"]]], "OK", None, None, [], ""]


def test_a_bulk_string_may_hold_crlf() -> None:
    assert read_all(b"$4\r\na\r\nb\r\n") == ["a\r\nb"]


@pytest.mark.parametrize("cut", range(1, 40))
def test_every_incomplete_prefix_is_waited_for(cut: int) -> None:
    buf = b"*3\r\n$6\r\nmaster\r\n:42\r\n*1\r\n*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"
    if cut < len(buf):
        assert resp_value(buf[:cut], 0) is None


def test_an_error_reply_is_read_as_one_for_the_threaded_probe() -> None:
    [error] = read_all(b"-LOADING Redis is loading the dataset in memory\r\n")
    assert isinstance(error, ErrorReply) and error.startswith("LOADING")


@pytest.mark.parametrize("buf", [
    b"%1\r\n+a\r\n+b\r\n",  # a RESP3 map
    b"$2\r\n\xff\xfe\r\n",  # not UTF-8
    b"$x\r\nab\r\n",  # a length that is not a number
    b":12a\r\n",
    b"$2\r\nabcd\r\n",  # a bulk string longer than it said
    b"hello\r\n",
    # The same inside an array, where bulk strings are read without a call through resp_value
    b"*1\r\n$2\r\n\xff\xfe\r\n",
    b"*2\r\n$1\r\na\r\n$x\r\nab\r\n",
    b"*1\r\n$2\r\nabcd\r\n",
    b"*1\r\n%1\r\n+a\r\n+b\r\n",
])
def test_what_the_reader_does_not_take_is_refused(buf: bytes) -> None:
    with pytest.raises(Unexpected):
        resp_value(buf, 0)


def test_pack_writes_bulk_strings_by_their_encoded_length() -> None:
    assert pack(("SET", "k", "é")) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n"


@pytest.mark.parametrize("persistence, loading", [
    ("# Persistence\r\nloading:1\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\n", True),
    ("# Persistence\r\nasync_loading:1\r\nloading:0\r\n", False),
    ("# Persistence\r\nasync_loading:1\r\n", False),
])
def test_of_persistence_only_loading_is_read_and_the_other_sections_whole(persistence: str, loading: bool) -> None:
    from ansible_collections.codis.ha.plugins.module_utils._probe import _answered

    replication = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:%s\r\nmaster_repl_offset:42\r\n" % (
        "a" * 40)
    keyspace = "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb1:keys=4,expires=0,avg_ttl=0\r\n"
    seen = _answered("127.0.0.1:6379", 1, [replication, persistence, keyspace, ["master", 42, []],
                                           ["repl-ping-replica-period", "10", "repl-diskless-sync-delay", "5"]], 1.5)
    assert (seen.alive, seen.role, seen.offset, seen.keys, seen.loading) == (True, "master", 42, 7, loading)
    assert (seen.ping_period, seen.sync_delay, seen.answered_at) == (10, 5, 1.5)
