"""Services: what a command does, apart from parsing its arguments and printing.

A command module (commands/) parses, calls one service here and prints; the services put the
pieces together (fleet/ to run, models/ to make variants, analysis/ to judge, results/ to keep).
"""
