# CloudWatch for the fleet: a log group per service (Fluent Bit ships container logs there), and alarms
# on MSK consumer lag per consumer group, since growing lag is the first sign that a consumer is stuck or
# under-scaled (design section 4: "monitor consumer lag"). Alarms notify an encrypted SNS topic.

resource "aws_cloudwatch_log_group" "service" {
  for_each = toset(var.services)

  name              = "/${var.name}/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = merge(var.tags, { service = each.value })
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_metric_alarm" "offset_lag" {
  for_each = var.consumer_topics

  alarm_name          = "${var.name}-${each.key}-offset-lag"
  alarm_description   = "${each.key} is falling behind on ${each.value}: KEDA should be adding replicas; check for a stuck consumer or the partition ceiling."
  namespace           = "AWS/Kafka"
  metric_name         = "MaxOffsetLag"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.max_offset_lag
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  dimensions = {
    "Cluster Name"   = var.msk_cluster_name
    "Consumer Group" = each.key
    "Topic"          = each.value
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "time_lag" {
  for_each = var.consumer_topics

  alarm_name          = "${var.name}-${each.key}-time-lag"
  alarm_description   = "${each.key} is more than ${var.max_time_lag_seconds}s behind on ${each.value}."
  namespace           = "AWS/Kafka"
  metric_name         = "EstimatedMaxTimeLag"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.max_time_lag_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  dimensions = {
    "Cluster Name"   = var.msk_cluster_name
    "Consumer Group" = each.key
    "Topic"          = each.value
  }

  tags = var.tags
}
