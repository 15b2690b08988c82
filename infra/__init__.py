"""AWS provisioning: pixel bucket, log bucket, CloudFront distribution, Kinesis stream, IAM role
and the real-time log configuration (DESIGN §6). boto3 only."""
