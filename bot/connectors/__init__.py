"""Platform connectors: one package per platform, each exporting one connector spec (its config
model, secrets, source and publisher builder, reply limit, length counter and display name).

Shared parts: ``base`` (the Source and Publisher interfaces), ``spec`` (the spec itself),
``catalog`` (the one list of platforms and what is derived from it), ``registry`` (which
publisher answers a mention), the ``manual`` and ``log`` publishers, ``clean`` (untrusted text
to safe plain text) and ``http/`` (HTTP clients, limits and the webhook inbox)."""
