"""HTTP shared by connectors: the outbound client with its limits (size, redirects, private
addresses), the API client base and rate budget, the inbound server's limits, and the queue
that holds pushed mentions until the pipeline stores them."""
