"""Services: what a command does, apart from parsing its arguments and printing."""
