"""moto_server with DynamoDB requests made atomic, for natter's tests.

Usage: python shared/tests/common/moto_server.py -H 127.0.0.1 -p PORT   (same options as moto_server)

Stock moto (5.x) falls short of DynamoDB in two ways that natter's store tests hit:

1. No isolation. moto_server runs every request on its own thread with no lock, and
   TransactWriteItems applies its items one by one, then, when one fails, puts back a copy of the
   whole table taken before it started. Concurrent requests therefore see half-applied
   transactions, a failed transaction rolls back other requests' writes, and copying a table while
   another thread writes it fails ("RuntimeError: dictionary changed size during iteration").
   DynamoDB itself serializes conflicting transactions. Here every DynamoDB request holds one lock.

2. Cost. That copy is a deepcopy of the whole table on every TransactWriteItems, ~16 µs per item:
   10,000 reactions on one message (20,000 items) would take about 40 minutes. Here a transaction
   instead remembers the items it touches (and the stream's length) and restores just those.

Responses carry `x-natter-moto: atomic` so that tests can tell this server from a stock one.
"""

import copy as _copy
import sys
import threading

from moto.dynamodb import models as _ddb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_lock = threading.RLock()
_state = threading.local()


# --- 1. One DynamoDB request at a time -----------------------------------------------------------

_call_action = DynamoHandler.call_action


def _locked_call_action(self):
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _locked_call_action


# --- 2. Transactions roll back the items they touched, not a copy of the table ------------------


class _CopyModule:
    """What `moto.dynamodb.models` sees as `copy`: a table is not copied inside a journaled
    transaction (the journal restores it); everything else is copied as usual."""

    def __getattr__(self, name):
        return getattr(_copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table) and getattr(_state, "journaling", False):
            return value
        return _copy.deepcopy(value, memo)


_ddb_models.copy = _CopyModule()

_transact_write_items = DynamoDBBackend.transact_write_items


def _key_of(table, op_type, op):
    key = op["Item"] if op_type == "Put" else op["Key"]
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def _current(table, hash_value, range_value):
    if range_value is None:
        return table.items.get(hash_value)
    return table.items.get(hash_value, {}).get(range_value)


def _restore(table, hash_value, range_value, old):
    if range_value is None:
        if old is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = old
        return
    if old is None:
        table.items.get(hash_value, {}).pop(range_value, None)
    else:
        table.items[hash_value][range_value] = old


def _journaled_transact_write_items(self, transact_items):
    with _lock:
        try:
            journal = []
            streams = {}
            for entry in transact_items:
                (op_type, op), = entry.items()
                table = self.tables.get(op.get("TableName"))
                if table is None:
                    continue
                hash_value, range_value = _key_of(table, op_type, op)
                old = _copy.deepcopy(_current(table, hash_value, range_value))
                journal.append((table, hash_value, range_value, old))
                shard = table.stream_shard
                if shard is not None and id(shard) not in streams:
                    streams[id(shard)] = (shard, len(shard.items))
        except Exception:
            # A malformed request: let moto's own code report it, copying tables as it does.
            return _transact_write_items(self, transact_items)
        _state.journaling = True
        try:
            return _transact_write_items(self, transact_items)
        except BaseException:
            for table, hash_value, range_value, old in reversed(journal):
                _restore(table, hash_value, range_value, old)
            for shard, length in streams.values():
                if len(shard.items) >= length:
                    del shard.items[length:]
            raise
        finally:
            _state.journaling = False


DynamoDBBackend.transact_write_items = _journaled_transact_write_items


# --- A marker header on every response -----------------------------------------------------------

_app_call = DomainDispatcherApplication.__call__


def _marked_call(self, environ, start_response):
    def start(status, headers, exc_info=None):
        headers = list(headers) + [("x-natter-moto", "atomic")]
        if exc_info is None:
            return start_response(status, headers)
        return start_response(status, headers, exc_info)

    return _app_call(self, environ, start)


DomainDispatcherApplication.__call__ = _marked_call


if __name__ == "__main__":
    main(sys.argv[1:])
