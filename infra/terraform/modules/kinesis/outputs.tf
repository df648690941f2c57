output "stream_name" {
  description = "Name of the trade stream."
  value       = aws_kinesis_stream.trades.name
}

output "stream_arn" {
  description = "ARN of the trade stream."
  value       = aws_kinesis_stream.trades.arn
}
