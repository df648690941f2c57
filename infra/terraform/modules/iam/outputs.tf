output "service_role_arns" {
  description = "IAM role of each service."
  value       = { for service, role in aws_iam_role.service : service => role.arn }
}

output "init_role_arn" {
  description = "IAM role of the init job."
  value       = aws_iam_role.init.arn
}

output "keda_operator_role_arn" {
  description = "IAM role of the KEDA operator (read-only consumer lag)."
  value       = aws_iam_role.keda.arn
}
