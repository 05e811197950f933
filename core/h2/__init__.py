"""H2: connection with exact values (triggers and outbox come with capture)."""
