// How the protocol is reached: the TCP port a server listens on and a client dials when none is given.

export const DEFAULT_PORT = 7443;
