"""What talks to AWS: the session, S3, the execution role, SageMaker jobs and endpoints,
and invoking them. Every call goes through boto3 (or the SageMaker SDK on the same boto3
session), so profile, region and `AWS_ENDPOINT_URL` apply alike."""
