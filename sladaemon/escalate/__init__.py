"""From SLA instants to deliveries: the timer queue, routing, retry policy."""
