"""Pure rules of the auth service: who a token is for, how long it lives, what a heartbeat does."""
