output "log_group_names" {
  description = "Log group of each service."
  value       = { for service, group in aws_cloudwatch_log_group.service : service => group.name }
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (subscribe the on-call pager to it)."
  value       = aws_sns_topic.alarms.arn
}

output "lag_alarm_names" {
  description = "Consumer lag alarms."
  value       = concat([for alarm in aws_cloudwatch_metric_alarm.offset_lag : alarm.alarm_name], [for alarm in aws_cloudwatch_metric_alarm.time_lag : alarm.alarm_name])
}
