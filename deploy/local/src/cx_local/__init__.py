"""Local stack launcher: embedded Postgres, NATS JetStream and the five services as child processes."""
