"""HTTP pieces the hub and an agency's push endpoint share: listening sockets, bounded body
reads, problem+json answers and the access log. Small on purpose: an agency's software loads
this, never the hub."""
