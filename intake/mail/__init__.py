"""Mail side: the mailbox, one message\x27s envelope and attachments, and the outbox."""
