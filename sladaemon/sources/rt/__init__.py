"""Request Tracker 5 (REST2): tickets from TicketSQL searches, their history from batched
TransactionSQL searches, RT's SLA ``Due`` as native deadlines."""
