"""The product run for real, for the tests and the benchmarks alike: the server process on free
loopback ports (`server_process`), a local image server that can misbehave or hold a response
(`image_server`), and the production image in a container run the way KServe runs it
(`container`)."""
