# MSK for the order pipeline: TLS everywhere (client-broker and in-cluster), IAM authentication for the
# services and KEDA (SCRAM stays available for tools that cannot sign with IAM), encryption at rest with
# the environment's KMS key, per-partition metrics (consumer lag alarms, KEDA), broker logs in
# CloudWatch. Topics are not made here: the chart's init Job (`spot admin init`, IAM role modules/iam
# "init") creates the four topics and their dead-letter topics with KAFKA_PARTITIONS and
# KAFKA_REPLICATION_FACTOR (helm_values hands over this module's partitions and replication_factor), so this
# module needs only the AWS provider and the estate has one place that knows the topic names.

resource "aws_security_group" "brokers" {
  name        = "${var.name}-msk"
  description = "MSK brokers of ${var.name}"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "brokers_iam" {
  for_each = var.client_security_groups

  security_group_id            = aws_security_group.brokers.id
  description                  = "Kafka clients over TLS with IAM (9098) or SCRAM (9096)"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 9096
  to_port                      = 9098
}

resource "aws_vpc_security_group_egress_rule" "brokers" {
  security_group_id            = aws_security_group.brokers.id
  description                  = "Brokers replicate to each other"
  referenced_security_group_id = aws_security_group.brokers.id
  ip_protocol                  = "-1"
}

resource "aws_cloudwatch_log_group" "brokers" {
  name              = "/aws/msk/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_msk_configuration" "this" {
  name           = var.name
  kafka_versions = [var.kafka_version]

  # Topics exist only through `spot admin init`, never by a producer's typo; what a topic keeps and how is
  # the brokers' default, since the init Job names only partitions and replicas.
  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    compression.type=zstd
    default.replication.factor=${var.replication_factor}
    log.retention.hours=${var.retention_hours}
    min.insync.replicas=${max(1, var.replication_factor - 1)}
    num.partitions=${var.partitions}
    unclean.leader.election.enable=false
  PROPERTIES
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count
  enhanced_monitoring    = "PER_TOPIC_PER_PARTITION"

  broker_node_group_info {
    instance_type   = var.broker_instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.brokers.id]

    storage_info {
      ebs_storage_info {
        volume_size = var.broker_volume_size
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  client_authentication {
    unauthenticated = false

    sasl {
      iam   = true
      scram = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = var.kms_key_arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }
      node_exporter {
        enabled_in_broker = true
      }
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.brokers.name
      }
    }
  }

  tags = var.tags
}
