output "function_name" {
  description = "Name of the order ingestion function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the order ingestion function."
  value       = aws_lambda_function.this.arn
}

output "invoke_arn" {
  description = "Invoke ARN for API Gateway integrations."
  value       = aws_lambda_function.this.invoke_arn
}

output "security_group_id" {
  description = "Security group of the function (MSK admits it)."
  value       = aws_security_group.this.id
}

output "kms_key_id" {
  description = "KMS_KEY_ID of the function: the key it opens API secrets with (the fleet's, as the gateway's)."
  value       = aws_lambda_function.this.environment[0].variables.KMS_KEY_ID
}
