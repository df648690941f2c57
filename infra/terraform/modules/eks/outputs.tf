output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "Private endpoint of the Kubernetes API."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority" {
  description = "Base64-encoded certificate authority of the Kubernetes API."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "Security group of the control plane and nodes; data stores admit it."
  value       = aws_security_group.cluster.id
}

output "node_role_name" {
  description = "IAM role of the nodes (EC2NodeClass spec.role in deploy/karpenter)."
  value       = aws_iam_role.node.name
}

output "node_instance_profile_name" {
  description = "Instance profile wrapping the node role."
  value       = aws_iam_instance_profile.node.name
}

output "karpenter_controller_role_arn" {
  description = "IAM role of the Karpenter controller."
  value       = aws_iam_role.karpenter.arn
}

output "karpenter_interruption_queue" {
  description = "SQS queue Karpenter reads interruption events from."
  value       = aws_sqs_queue.karpenter_interruption.name
}
