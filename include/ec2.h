/* ec2.h — placeholder: being written */
#pragma once
