output "sampling_rule_names" {
  description = "Sampling rules, highest priority first."
  value       = [aws_xray_sampling_rule.health.rule_name, aws_xray_sampling_rule.orders.rule_name, aws_xray_sampling_rule.default.rule_name]
}

output "order_errors_group_arn" {
  description = "X-Ray group of failed order requests."
  value       = aws_xray_group.order_errors.arn
}
