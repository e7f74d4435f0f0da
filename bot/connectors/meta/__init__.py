"""What the Facebook and Instagram connectors share: the Graph API client, the source and
publisher bases, and the Meta webhook endpoint."""
