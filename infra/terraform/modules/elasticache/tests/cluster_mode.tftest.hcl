# ElastiCache runs as the fleet's Redis client expects (REDIS_CLUSTER, from this module's cluster_mode, on by
# default), and the endpoint handed to REDIS_URL is the one that answers in the chosen mode: the primary endpoint without cluster mode, the configuration endpoint
# with it. Run offline with the AWS provider mocked (tests/deploy/test_terraform.py).

mock_provider "aws" {
  mock_data "aws_secretsmanager_random_password" {
    defaults = { random_password = "mock-token-mock-token-mock-token" }
  }
  mock_resource "aws_elasticache_replication_group" {
    defaults = {
      primary_endpoint_address       = "master.spot-test.cache.amazonaws.com"
      configuration_endpoint_address = "clustercfg.spot-test.cache.amazonaws.com"
      port                           = 6379
    }
  }
}

variables {
  name                   = "spot-test"
  vpc_id                 = "vpc-0123456789abcdef0"
  subnet_ids             = ["subnet-a", "subnet-b", "subnet-c"]
  client_security_groups = { nodes = "sg-nodes", ingestion_lambda = "sg-lambda" }
  kms_key_arn            = "arn:aws:kms:eu-west-1:111122223333:key/test"
}

run "without_cluster_mode_one_shard_and_the_primary_endpoint" {
  command = apply

  variables {
    cluster_mode = false
  }

  assert {
    condition     = output.cluster_mode == false && aws_elasticache_replication_group.this.cluster_mode == "disabled"
    error_message = "cluster mode off when asked"
  }

  assert {
    condition     = aws_elasticache_replication_group.this.parameter_group_name == "default.redis7" && aws_elasticache_replication_group.this.num_node_groups == 1
    error_message = "without cluster mode: one node group and the non-cluster parameter group"
  }

  assert {
    condition     = output.endpoint == "master.spot-test.cache.amazonaws.com"
    error_message = "without cluster mode REDIS_URL must name the primary endpoint (there is no configuration endpoint)"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.clients : r.referenced_security_group_id]) == toset(values(var.client_security_groups))
    error_message = "every client group (the nodes, the ingestion Lambda) is admitted on 6379"
  }
}

run "cluster_mode_when_asked_uses_the_configuration_endpoint" {
  command = apply

  variables {
    cluster_mode = true
  }

  assert {
    condition     = output.cluster_mode == true && aws_elasticache_replication_group.this.parameter_group_name == "default.redis7.cluster.on"
    error_message = "cluster mode must use the cluster-on parameter group"
  }

  assert {
    condition     = output.endpoint == "clustercfg.spot-test.cache.amazonaws.com"
    error_message = "in cluster mode REDIS_URL must name the configuration endpoint"
  }
}
