output "database_name" {
  description = "Glue / Athena database name."
  value       = aws_glue_catalog_database.this.name
}

output "trades_table_name" {
  description = "Name of the trades table."
  value       = aws_glue_catalog_table.trades.name
}

output "trades_table_arn" {
  description = "ARN of the trades table."
  value       = aws_glue_catalog_table.trades.arn
}
