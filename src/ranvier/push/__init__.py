"""Push: the default push rules, their evaluation for every member as events are stored,
and the unread notification and highlight counts that /sync reports."""
