"""Tables owned by the push service."""

from ranvier.storage.engine import Transaction
from ranvier.storage.migrations import Migration, Schema

_COMPACT = """
CREATE TABLE push_action_sets (
    actions_id INTEGER PRIMARY KEY,
    actions TEXT NOT NULL UNIQUE
);
CREATE TABLE room_notifications (
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    thread_id TEXT NOT NULL,
    notify SMALLINT NOT NULL,
    highlight SMALLINT NOT NULL,
    actions_id INTEGER NOT NULL,
    PRIMARY KEY (room_id, stream_ordering)
){clustered};
CREATE INDEX room_notifications_threads ON room_notifications (room_id, stream_ordering) WHERE thread_id <> 'main';
CREATE TABLE member_notifications (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    thread_id TEXT NOT NULL,
    notify SMALLINT NOT NULL,
    highlight SMALLINT NOT NULL,
    actions_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, stream_ordering)
){clustered};
CREATE INDEX member_notifications_by_user ON member_notifications (user_id, stream_ordering);
CREATE INDEX member_notifications_threads ON member_notifications (user_id, room_id, stream_ordering)
    WHERE thread_id <> 'main';
"""

def _old_actions(table: str) -> str:
    """The actions of an old row; rows stored before actions were only knew notify and highlight."""
    return (f"COALESCE({table}.actions, CASE WHEN {table}.highlight = 1 "
            """THEN '["notify",{"set_tweak":"highlight"}]' ELSE '["notify"]' END)""")


async def _fill_compact(txn: Transaction, dialect: str) -> None:
    """Copy the rows of the old tables into the compact ones, then drop the old."""
    sets = await txn.fetchall(f"SELECT {_old_actions('p')} FROM push_notifications p UNION "
                              f"SELECT {_old_actions('a')} FROM event_push_actions a")
    await txn.executemany("INSERT INTO push_action_sets (actions_id, actions) VALUES (?, ?)",
                          [(number, row[0]) for number, row in enumerate(sorted(sets), 1)])
    await txn.execute(
        "INSERT INTO room_notifications (room_id, stream_ordering, thread_id, notify, highlight, actions_id) "
        "SELECT p.room_id, p.stream_ordering, p.thread_id, p.notify, p.highlight, s.actions_id "
        f"FROM push_notifications p JOIN push_action_sets s ON s.actions = {_old_actions('p')}")
    await txn.execute(
        "INSERT INTO member_notifications (user_id, room_id, stream_ordering, thread_id, notify, highlight, actions_id) "
        "SELECT a.user_id, a.room_id, a.stream_ordering, a.thread_id, a.notify, a.highlight, s.actions_id "
        f"FROM event_push_actions a JOIN push_action_sets s ON s.actions = {_old_actions('a')}")
    await txn.execute("DROP TABLE push_notifications")
    await txn.execute("DROP TABLE event_push_actions")


SCHEMA = Schema(
    "push",
    (
        Migration(
            1,
            "push actions of each event for each member, read positions per room and thread",
            """
CREATE TABLE event_push_actions (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    notify INTEGER NOT NULL,
    highlight INTEGER NOT NULL,
    thread_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id, stream_ordering)
);
CREATE TABLE push_read_positions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);
""",
        ),
        Migration(
            2,
            "thread actions indexed apart, so counting a thread scans only threads",
            """
CREATE INDEX event_push_actions_threads ON event_push_actions (user_id, room_id, stream_ordering)
    WHERE thread_id <> 'main';
""",
        ),
        Migration(
            3,
            "one row per notifying event for the whole room; per-member rows only where a member "
            "differs; the actions of each; pushers",
            """
CREATE TABLE push_notifications (
    stream_ordering BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    notify INTEGER NOT NULL,
    highlight INTEGER NOT NULL,
    actions TEXT NOT NULL,
    ts BIGINT NOT NULL
);
CREATE INDEX push_notifications_by_room ON push_notifications (room_id, stream_ordering);
CREATE INDEX push_notifications_threads ON push_notifications (room_id, stream_ordering)
    WHERE thread_id <> 'main';
ALTER TABLE event_push_actions ADD COLUMN actions TEXT;
ALTER TABLE event_push_actions ADD COLUMN ts BIGINT;
CREATE INDEX event_push_actions_by_user ON event_push_actions (user_id, stream_ordering);
CREATE TABLE pushers (
    pusher_id BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    pushkey_ts BIGINT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (user_id, app_id, pushkey)
);
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
""",
        ),
        Migration(
            4,
            "compact notification rows: the event's ID, sender and time are the event's own (found by its stream "
            "ordering), each distinct list of actions is stored once; the room's rows clustered by room",
            {"sqlite": _COMPACT.format(clustered=" WITHOUT ROWID"), "postgresql": _COMPACT.format(clustered="")},
            fill=_fill_compact,
            same_rows=True,
        ),
    ),
)
