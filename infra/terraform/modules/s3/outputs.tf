output "bucket_name" {
  description = "Name of the trade archive bucket."
  value       = aws_s3_bucket.archive.id
}

output "bucket_arn" {
  description = "ARN of the trade archive bucket."
  value       = aws_s3_bucket.archive.arn
}

output "trades_location" {
  description = "S3 prefix of the trades table (Glue table location)."
  value       = "s3://${aws_s3_bucket.archive.id}/trades/"
}

output "access_log_bucket_name" {
  description = "Bucket receiving the archive bucket's access logs."
  value       = aws_s3_bucket.access_logs.id
}
