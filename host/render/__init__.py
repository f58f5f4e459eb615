"""Everything that draws: live table, compare/history tables, HTML and SVG."""
